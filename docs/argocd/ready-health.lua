-- Argo CD health of tokenwarden.io ServiceAccount and RoleBinding: their Ready condition.
hs = {}
local ready = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end
if ready.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and ready.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "the operator has not seen the latest spec yet"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Degraded"
end
hs.message = ready.message or ready.reason
return hs
