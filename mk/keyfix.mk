# tests/unit/test_keyfix.c compiles src/lib/reconcile.c in (its key pass is
# static), so it is rebuilt when that file or what it includes changes.
$(BUILD)/tests/unit_keyfix $(SANITIZERS:%=$(BUILD)/%/tests/unit_keyfix): \
    src/lib/reconcile.c src/lib/reconcile.h src/lib/reclookup.h src/lib/connid.h
