// Passkeys on the hosted pages: WebAuthn options from their JSON form and credentials
// back to JSON (by hand where a browser lacks parse…FromJSON or toJSON), and the form
// posted with the credential in its `passkey` field.
const passkeyBytes = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const passkeyText = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
function passkeyRequest(options) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(options);
  return {...options, challenge: passkeyBytes(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({...c, id: passkeyBytes(c.id)}))};
}
function passkeyJSON(credential) {
  if (credential.toJSON) return credential.toJSON();
  const r = credential.response;
  return {id: credential.id, rawId: passkeyText(credential.rawId), type: credential.type,
    response: {clientDataJSON: passkeyText(r.clientDataJSON), authenticatorData: passkeyText(r.authenticatorData),
      signature: passkeyText(r.signature), userHandle: r.userHandle ? passkeyText(r.userHandle) : undefined},
    clientExtensionResults: credential.getClientExtensionResults()};
}
async function passkeySubmit(form, publicKey, more) {
  const credential = await navigator.credentials.get({publicKey: passkeyRequest(publicKey), ...more});
  form.elements.passkey.value = JSON.stringify(passkeyJSON(credential));
  form.submit();
}
function passkeyCreation(options) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(options);
  return {...options, challenge: passkeyBytes(options.challenge), user: {...options.user, id: passkeyBytes(options.user.id)},
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({...c, id: passkeyBytes(c.id)}))};
}
function passkeyNewJSON(credential) {
  if (credential.toJSON) return credential.toJSON();
  const r = credential.response;
  return {id: credential.id, rawId: passkeyText(credential.rawId), type: credential.type,
    response: {clientDataJSON: passkeyText(r.clientDataJSON), attestationObject: passkeyText(r.attestationObject),
      transports: r.getTransports ? r.getTransports() : []},
    clientExtensionResults: credential.getClientExtensionResults()};
}
async function passkeyCreate(form, publicKey) {
  const credential = await navigator.credentials.create({publicKey: passkeyCreation(publicKey)});
  form.elements.passkey.value = JSON.stringify(passkeyNewJSON(credential));
  form.submit();
}
