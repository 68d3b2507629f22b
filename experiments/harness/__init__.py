"""The research harness: experiment arms run as train commands, scored and plotted.

It lives with the experiments, outside what ``pip install`` ships.
"""
