-- chatstream schema, version 2: links a reader can open for each ingested source.
-- `chatstream ingest --base-url URL` stores the page's URL (documents.url) and the section anchor of each
-- chunk (chunks.anchor); a citation's source is then url#anchor instead of the file's path on the server.

ALTER TABLE documents ADD COLUMN url text;
ALTER TABLE chunks ADD COLUMN anchor text NOT NULL DEFAULT '';
