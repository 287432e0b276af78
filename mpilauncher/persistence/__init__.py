"""Rank 0's state on disk: queuestate snapshot + journal, written so no kill can corrupt them."""
