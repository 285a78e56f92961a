"""The viral-day simulation: real SQL and the real admission and queue, on a simulated clock."""
