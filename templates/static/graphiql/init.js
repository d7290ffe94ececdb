// Mounts GraphiQL (handlers/graphql/graphiql.py renders the page). Loaded as a
// file, not inline, so the page's Content-Security-Policy needs no script nonce.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var endpoint = root.getAttribute("data-endpoint");
  var csrf = root.getAttribute("data-csrf");
  function fetcher(params) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf; // cookie sessions: as for any API POST
    return fetch(endpoint, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(params),
      credentials: "same-origin",
    }).then(function (response) {
      return response.json();
    });
  }
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true })
  );
})();
