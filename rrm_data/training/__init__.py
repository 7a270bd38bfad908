"""Training reward models on preference datasets: recipes, Lightning data module and module."""
