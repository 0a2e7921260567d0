"""A user's package, as the recipe and CLI tests import it by path (``tests.byom_pkg.models:make_mlp``)."""
