# tests/unit/test_reclookup.c compiles src/lib/reclookup.c in (with its one
# ownfd call stubbed), so it is rebuilt when that file changes.
$(BUILD)/tests/unit_reclookup $(SANITIZERS:%=$(BUILD)/%/tests/unit_reclookup): \
    src/lib/reclookup.c src/lib/reclookup.h
