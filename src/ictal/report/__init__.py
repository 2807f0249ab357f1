"""Pictures and the HTML report of an evaluation, and the picture of one recording with its events."""
