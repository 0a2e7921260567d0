"""Recipes: YAML files naming a model, data, optional training, and compression steps."""

from torchslim.recipes.schema import Recipe, load_recipe, parse_recipe

__all__ = ["Recipe", "load_recipe", "parse_recipe"]
