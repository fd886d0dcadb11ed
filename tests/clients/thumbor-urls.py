"""Prints the URLs libthumbor's CryptoURL builds: argv[1] is JSON {"key": ..., "requests":
[keyword arguments of CryptoURL.generate, ...]}; the output a JSON array of URLs, one per
request. Used by tests/it/dialects.rs."""
import json
import sys

from libthumbor import CryptoURL

args = json.loads(sys.argv[1])
crypto = CryptoURL(key=args["key"])
print(json.dumps([crypto.generate(**r) for r in args["requests"]]))
