-- @group notifications
-- A retried "new photo" job must not notify a follower twice.
DELETE FROM notifications a USING notifications b
    WHERE a.kind = 'photo' AND b.kind = 'photo' AND a.user_id = b.user_id
      AND a.photo_id = b.photo_id AND a.id > b.id;
CREATE UNIQUE INDEX notifications_photo_once
    ON notifications (user_id, photo_id) WHERE kind = 'photo';
