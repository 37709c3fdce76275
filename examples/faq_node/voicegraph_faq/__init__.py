"""An example voicegraph plugin: the `faq` node type (see docs/writing-a-node.md)."""
