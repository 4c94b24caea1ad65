"""The evidence room: what a drill hands to an auditor or a tabletop exercise.

- ``pack``      the evidence pack: run files, a SHA-256 manifest, an optional Ed25519 signature,
                its offline verification, and the signing keys
- ``tabletop``  the printable tabletop sheet that walks people through a drill
"""
