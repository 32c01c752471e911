"""Small helpers shared by every layer: device choice, atomic files, seeding, logging."""
