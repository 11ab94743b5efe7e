"""PostgreSQL: that every subscriber tag and audit row names an existing subscriber, checked
once per statement instead of once per row.

A foreign key is checked by a trigger run for each inserted row: for an import of new people
(two tags and three audit rows each) that was more than half the server's work. On
PostgreSQL `subscriber_tags` and `subscriber_history` therefore have no foreign key; these
statement triggers keep its two promises, for the READ COMMITTED transactions newsletter
runs:

- after an INSERT or UPDATE, every subscriber the statement's rows name is locked `FOR KEY
  SHARE` (as the key's own check locks it) and must exist, else the statement fails with
  `foreign_key_violation` (an IntegrityError, as before). A concurrent erasure then waits
  for this transaction, or, if it committed first, this statement finds the row gone;
- after a DELETE of subscribers, their tags and audit rows go too (the key's ON DELETE
  CASCADE), read afresh, so rows another transaction committed while the delete waited for
  its lock go as well.

SQLite keeps the foreign keys (its check is an index look-up). db.tables attaches these
statements to the tables; migration 18 has its own frozen copy.
"""

from __future__ import annotations

CHECK_FUNCTION = """
CREATE OR REPLACE FUNCTION newsletter_rows_name_subscribers() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT w.subscriber_id INTO missing
      FROM (SELECT DISTINCT subscriber_id FROM written) AS w
     WHERE NOT EXISTS (SELECT FROM subscribers s WHERE s.id = w.subscriber_id FOR KEY SHARE)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME,
            MESSAGE = 'insert or update on table "' || TG_TABLE_NAME || '": subscriber '
                      || missing || ' does not exist';
    END IF;
    RETURN NULL;
END
$$
"""

CASCADE_FUNCTION = """
CREATE OR REPLACE FUNCTION newsletter_subscribers_take_their_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM subscriber_tags WHERE subscriber_id = ANY (ARRAY(SELECT id FROM gone));
    DELETE FROM subscriber_history WHERE subscriber_id = ANY (ARRAY(SELECT id FROM gone));
    RETURN NULL;
END
$$
"""


def checks(table: str) -> list[str]:
    """The function and the two statement triggers that check `table`'s subscriber ids."""
    return [CHECK_FUNCTION] + [
        f"CREATE TRIGGER {table}_{event.lower()}_names_subscribers AFTER {event} ON {table} "
        "REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
        "EXECUTE FUNCTION newsletter_rows_name_subscribers()"
        for event in ("INSERT", "UPDATE")]


CASCADE = [CASCADE_FUNCTION,
           "CREATE TRIGGER subscribers_delete_takes_their_rows AFTER DELETE ON subscribers "
           "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
           "EXECUTE FUNCTION newsletter_subscribers_take_their_rows()"]
