-- @group photos
-- The owner's name and privacy on each photo (issue 10): photo reads and
-- the privacy rule take them from the photo, so no statement of the PHOTOS
-- group joins `users` and the group can live in a database of its own. The
-- username never changes; a new display name or privacy reaches the photos
-- by the trigger below where users and photos share a database (in the
-- same transaction), else by a job (picshare/users.py).
ALTER TABLE photos
    ADD COLUMN owner_username text,
    ADD COLUMN owner_display_name text,
    ADD COLUMN owner_private boolean;
-- @group photos users
UPDATE photos p
   SET owner_username = u.username, owner_display_name = u.display_name, owner_private = u.private
  FROM users u WHERE u.id = p.owner_id;

-- Where the two share a database, the database keeps the copies: a photo
-- made without them takes its owner's, read under the owner's row lock (a
-- privacy change being committed is waited for, then read), and an owner's
-- change rewrites their photos in its own transaction, so privacy is never
-- behind there. NO KEY UPDATE: the lock an upload takes anyway to move the
-- owner's photo_count, so two uploads never deadlock upgrading a share lock.
CREATE FUNCTION picshare_photo_owner() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner record;
BEGIN
    SELECT username, display_name, private INTO owner
      FROM users WHERE id = NEW.owner_id FOR NO KEY UPDATE;
    IF FOUND THEN
        NEW.owner_username := owner.username;
        NEW.owner_display_name := owner.display_name;
        NEW.owner_private := owner.private;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER photos_owner BEFORE INSERT ON photos
    FOR EACH ROW WHEN (NEW.owner_username IS NULL) EXECUTE FUNCTION picshare_photo_owner();

CREATE FUNCTION picshare_owner_to_photos() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE photos SET owner_username = NEW.username, owner_display_name = NEW.display_name,
           owner_private = NEW.private
     WHERE owner_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_owner_to_photos AFTER UPDATE OF username, display_name, private ON users
    FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username
          OR OLD.display_name IS DISTINCT FROM NEW.display_name
          OR OLD.private IS DISTINCT FROM NEW.private)
    EXECUTE FUNCTION picshare_owner_to_photos();
-- @group photos
-- Every photo has them from here on: given by its writer where the owner
-- lives elsewhere, else by the trigger above (NOT NULL is checked after it).
ALTER TABLE photos
    ALTER COLUMN owner_username SET NOT NULL,
    ALTER COLUMN owner_display_name SET NOT NULL,
    ALTER COLUMN owner_private SET NOT NULL;
