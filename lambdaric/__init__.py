"""lambdaric: a Python Runtime Interface Client for AWS Lambda container images.

Importing the package must stay cheap: it is on the cold-start path of every
function, so this module defines only the version and nothing else.
"""

__version__ = "0.1.0"
