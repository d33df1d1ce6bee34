"""Who is calling: API keys (`keys`), the resolved caller (`principal`) and the check of a call's
credential at the edge (`authenticator`). The interceptor authenticates once per call; the
servicers authorise with the principal it attached (docs/security.md)."""
