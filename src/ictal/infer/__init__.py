"""A trained model over recordings: trace scorers, evaluation on a cached split, prediction, streaming."""
