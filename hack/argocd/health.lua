-- Argo CD health for every Agility kind (group *.agility.dev), kept in line with kstatus (Flux):
-- the status must describe the current generation, then the conditions decide.
--   Ready=True                                  -> Healthy (a Degraded=True note is appended)
--   Ready=False, reason InvalidSpec             -> Degraded (waits for a spec change)
--   Ready=False and Degraded=True               -> Degraded (not serving, and not just starting)
--   anything else                               -> Progressing
-- Argo CD runs this under Lua 5.1 with `obj` set to the object.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready, degraded = nil, nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    -- A condition set for an older generation says nothing about the current spec.
    local current = generation == nil or c.observedGeneration == nil or c.observedGeneration >= generation
    if current and c.type == "Ready" then
      ready = c
    elseif current and c.type == "Degraded" then
      degraded = c
    end
  end
end

local function describe(c)
  local text = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local is_degraded = degraded ~= nil and degraded.status == "True"
if ready == nil then
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if is_degraded then
    hs.message = hs.message .. " (degraded: " .. describe(degraded) .. ")"
  end
elseif ready.status == "False" and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = describe(ready)
elseif ready.status == "False" and is_degraded then
  hs.status = "Degraded"
  hs.message = describe(degraded)
else
  hs.message = describe(ready)
end
return hs
