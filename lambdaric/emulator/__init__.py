"""The local emulator: the Lambda Invoke API in front of child runtime processes.

Server side only; it shares the protocol core's names and limits and never imports the
runtime loop (``lambdaric.bootstrap``).
"""
