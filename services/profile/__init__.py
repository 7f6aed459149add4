"""Profile service: one trusted view of each customer, folded from the bank's source systems."""
