"""Event watchers: `BaseEventTrigger`s the triggerer runs for the per-practice `cherry_events/<slug>` Assets."""
