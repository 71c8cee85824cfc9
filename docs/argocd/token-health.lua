-- Argo CD health of tokenwarden.io ServiceToken and IngestionAPIKey.
hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to mint the token"
  return hs
end
local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
local message = status.phase
if ready ~= nil and ready.message ~= nil then
  message = ready.message
end
if ready ~= nil and ready.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and ready.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "the operator has not seen the latest spec yet"
  return hs
end
if status.phase == "Active" then
  if ready ~= nil and ready.status == "False" then
    hs.status = "Degraded"
  else
    hs.status = "Healthy"
  end
elseif status.phase == "Pending" then
  hs.status = "Progressing"
else
  -- Failed, Expired, Revoked
  hs.status = "Degraded"
end
hs.message = message
return hs
