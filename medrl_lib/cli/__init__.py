"""Layer 9, the ``medrl`` command (:mod:`.main`), its arguments (:mod:`.args`) and its cluster commands
(:mod:`.cluster`): on top of every other layer, imported by none."""
