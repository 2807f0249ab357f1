"""From a corpus on disk to training windows: corpus layout, the preprocessed cache, manifests, windows, sampling."""
