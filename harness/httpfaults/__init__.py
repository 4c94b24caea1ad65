"""Provider faults at the HTTP and streaming layer, through a real proxy (mitmproxy's mitmdump).

``addon.py`` runs inside mitmdump and injects the faults; ``client.py`` drives it from the
harness; ``proxy.py`` starts it. Toxiproxy works on TCP and cannot answer an HTTP status or cut a
stream after N events; this room does what Toxiproxy cannot, and is driven the same way.
"""
