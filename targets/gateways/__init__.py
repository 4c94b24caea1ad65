"""Third-party LLM gateways run as shipped targets (docs/gateways.md): small launchers that start
the pinned LiteLLM proxy and Portkey gateway from their own environments, configured only through
the stack file, so a drill's stack file is the whole record of what was drilled."""
