// Hand-written: starts Swagger UI on the OpenAPI document that this server
// serves. It is a file of its own, not an inline script, so that the page's
// Content-Security-Policy can allow scripts from 'self' only.
window.ui = SwaggerUIBundle({
  url: "/openapi.yaml",
  dom_id: "#swagger-ui",
  // The API reference alone: no top bar with a box for loading other documents.
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  filter: true,
  // The default sends the document's address to validator.swagger.io for a badge.
  validatorUrl: null,
});
