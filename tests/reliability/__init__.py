"""Reliability: hostile input and faults hurt no one else."""
