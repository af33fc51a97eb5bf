"""Gymnasium environments of the SO-101 in MuJoCo: tasks, scripted experts, randomisation."""
