"""The preprocessing chain shared by training, evaluation and inference, whole or chunk by chunk."""
