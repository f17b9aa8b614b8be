// Reads [{secret, headers, body}] as JSON on stdin and prints, for each, "ok" or the error
// the standardwebhooks reference library raises when verifying the request.
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map(({ secret, headers, body }) => {
    try {
      new Webhook(secret).verify(body, headers);
      return "ok";
    } catch (e) {
      return String(e.message || e);
    }
  });
  process.stdout.write(JSON.stringify(results));
});
