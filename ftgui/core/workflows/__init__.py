"""What the front ends run: sessions, comparisons, run records, cluster jobs, TensorBoard."""
