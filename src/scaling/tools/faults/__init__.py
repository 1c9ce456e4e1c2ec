"""The fault campaign: kills, damages and bad input against real runs, to show that nothing is
lost."""
