-- @group notifications
-- A comment's notification, found by the comment: where notifications have
-- a database of their own, the key that deleted it with its comment cannot
-- exist (picshare/notify.py says `forget_comment` instead), and this index
-- keeps that from scanning every notification.
CREATE INDEX notifications_comment ON notifications (comment_id) WHERE comment_id IS NOT NULL;
