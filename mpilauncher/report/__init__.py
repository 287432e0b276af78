"""What the user reads: debug trace, final statistics, joblog."""
