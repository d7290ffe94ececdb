-- Moderation (picshare/moderation.py): a photo is shown once its renditions
-- exist and, when a moderation service is configured, once it approved it.

-- @group photos
-- 'none': no moderation asked (photos uploaded without a moderation URL, and
-- every photo from before); 'pending': waiting for the service's verdict;
-- 'approved' or 'rejected': its latest verdict. Renditions and verdicts each
-- update this row, and whichever comes last turns it `ready`, in one
-- conditional UPDATE (storage/photos_repo.py).
ALTER TABLE photos ADD COLUMN moderation text NOT NULL DEFAULT 'none'
    CHECK (moderation IN ('none', 'pending', 'approved', 'rejected'));
-- `photo.ready` has been written for it: the event goes out once, however
-- often later verdicts take the photo down and put it back.
ALTER TABLE photos ADD COLUMN ready_announced boolean NOT NULL DEFAULT false;
UPDATE photos SET ready_announced = true WHERE status = 'ready';
