"""Reaching the Dagger engine: the session child (provision), noticing that the engine went
away (watchdog), the SDK imported lean (sdk), the schema kept between runs (schema) and the
session a run works in (session). May import the image room, the shared vocabulary and the
leaves; never a recipe, a registry or a flow."""
