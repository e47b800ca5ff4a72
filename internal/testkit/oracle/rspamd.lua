-- Prints one JSON line per message named in the list file given as the first argument: the
-- links Rspamd's URL detector reports and the decoded bytes of every MIME part, as hashes.
-- Run as: rspamadm lua -b rspamd.lua -a LISTFILE
local rspamd_url = require "rspamd_url"
local rspamd_task = require "rspamd_task"
local hash = require "rspamd_cryptobox_hash"
local ucl = require "ucl"

-- Without the public suffix list every host is "no_tld" and most text links are dropped.
rspamd_url.init("/usr/share/rspamd/effective_tld_names.dat")

local function sha256(s)
  if not s then return "" end
  return hash.create_specific('sha256', tostring(s)):hex()
end

local function flag_list(u)
  local names = {}
  for name, set in pairs(u:get_flags() or {}) do
    if set then table.insert(names, name) end
  end
  table.sort(names)
  -- A string, not a list: UCL writes an empty table as an object, which would not decode
  -- as a list.
  return table.concat(names, ",")
end

for path in io.lines(arg[1]) do
  local ok, task = rspamd_task.load_from_file(path, rspamd_config)
  if not ok then
    print(ucl.to_format({file = path, error = tostring(task)}, 'json-compact'))
  else
    task:process_message()
    local out = {file = path, urls = {}, parts = {}}
    -- (true, true): e-mail addresses and image links too, not only the web links in text.
    for _, u in ipairs(task:get_urls(true, true) or {}) do
      table.insert(out.urls, {text = u:get_text(), raw = u:get_raw() or "",
        host = u:get_host() or "", protocol = u:get_protocol() or "", flags = flag_list(u)})
    end
    for _, p in ipairs(task:get_parts() or {}) do
      local t, st = p:get_type()
      local content = p:get_content()
      table.insert(out.parts, {
        type = string.lower((t or "") .. "/" .. (st or "")),
        filename = p:get_filename() or "",
        cte = p:get_cte() or "",
        multipart = p:is_multipart(),
        message = p:is_message(),
        attachment = p:is_attachment(),
        len = content and #content or 0,
        sha256 = sha256(content),
        raw_sha256 = sha256(p:get_raw_content()),
        -- Rspamd keeps the line break before the next boundary, which RFC 2046 counts as
        -- part of the boundary; without it the bytes can be compared with other parsers'.
        trimmed_sha256 = sha256(content and tostring(content):gsub("\r?\n$", "", 1)),
        text = (t == "text" and (st == "plain" or st == "html")) and tostring(content or "") or "",
      })
    end
    print(ucl.to_format(out, 'json-compact'))
    task:destroy()
  end
end
