"""The YAML config: its schema and validation (``schema``) and every environment switch (``env``)."""
