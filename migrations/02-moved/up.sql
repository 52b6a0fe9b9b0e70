-- Records that only changed position are counted apart from added/removed/changed
-- (a move in the delta). Versions recorded before this have none.
ALTER TABLE versions ADD COLUMN moved INTEGER NOT NULL DEFAULT 0;
