"""The four services of the platform; they never import each other."""
