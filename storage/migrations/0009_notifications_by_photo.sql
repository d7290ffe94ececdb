-- @group notifications
-- A photo's notifications, found by the photo: 0007 dropped the foreign key
-- that deleted them with it (a follower's notification may be on another
-- shard than the photo), so PicShare deletes them itself, on every shard
-- (picshare/photos.py, FORGET_JOB), and needs this index to do it without a
-- scan of every notification.
CREATE INDEX notifications_photo ON notifications (photo_id) WHERE photo_id IS NOT NULL;
