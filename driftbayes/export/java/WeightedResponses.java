/*
 * driftbayes-weighted: a WireMock 3 response-definition transformer that draws the response
 * status (and its body and Content-Type) from a categorical distribution, independently on
 * every request.
 *
 * The stub's own response is the most likely status; its transformerParameters carry the
 * other statuses:
 *
 *   "transformers": ["driftbayes-weighted"],
 *   "transformerParameters": {"alternatives": [
 *       {"p": 0.05, "status": 503, "bodyFileName": "x/503.json",
 *        "headers": {"Content-Type": "application/json"}},
 *       {"p": 0.01, "status": 204}]}
 *
 * With u ~ U(0, 1), the first alternative whose cumulative p exceeds u replaces status, body
 * (bodyFileName, else body, else none) and the headers it names; when u is beyond all of them
 * the stub's response is served as is. Delay (e.g. the stub's log-normal delayDistribution)
 * and the other headers are kept.
 *
 * Build: javac -cp wiremock-standalone.jar -d classes WeightedResponses.java
 *        jar cf driftbayes-weighted.jar -C classes .
 * Run:   java -cp wiremock-standalone.jar:driftbayes-weighted.jar wiremock.Run \
 *          --extensions driftbayes.WeightedResponses ...
 */
package driftbayes;

import com.github.tomakehurst.wiremock.client.ResponseDefinitionBuilder;
import com.github.tomakehurst.wiremock.extension.Parameters;
import com.github.tomakehurst.wiremock.extension.ResponseDefinitionTransformerV2;
import com.github.tomakehurst.wiremock.http.Body;
import com.github.tomakehurst.wiremock.http.HttpHeader;
import com.github.tomakehurst.wiremock.http.HttpHeaders;
import com.github.tomakehurst.wiremock.http.ResponseDefinition;
import com.github.tomakehurst.wiremock.stubbing.ServeEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

public class WeightedResponses implements ResponseDefinitionTransformerV2 {

  @Override
  public String getName() {
    return "driftbayes-weighted";
  }

  @Override
  public boolean applyGlobally() {
    return false;
  }

  @Override
  @SuppressWarnings("unchecked")
  public ResponseDefinition transform(ServeEvent event) {
    ResponseDefinition rd = event.getResponseDefinition();
    Parameters params = event.getTransformerParameters();
    if (params == null || !(params.get("alternatives") instanceof List)) {
      return rd;
    }
    double u = ThreadLocalRandom.current().nextDouble();
    double acc = 0.0;
    for (Object item : (List<Object>) params.get("alternatives")) {
      Map<String, Object> alt = (Map<String, Object>) item;
      acc += ((Number) alt.get("p")).doubleValue();
      if (u < acc) {
        return alternative(rd, alt);
      }
    }
    return rd;
  }

  @SuppressWarnings("unchecked")
  private static ResponseDefinition alternative(ResponseDefinition rd, Map<String, Object> alt) {
    ResponseDefinitionBuilder b = ResponseDefinitionBuilder.like(rd).but();
    b.withStatus(((Number) alt.get("status")).intValue());
    // The body: a file under __files, else inline text, else none (never the stub's own).
    b.withBodyFile((String) alt.get("bodyFileName"));
    if (alt.get("body") instanceof String) {
      b.withBody((String) alt.get("body"));
    } else {
      b.withResponseBody(Body.none());
    }
    Map<String, Object> replace =
        alt.get("headers") instanceof Map ? (Map<String, Object>) alt.get("headers") : Map.of();
    List<HttpHeader> headers = new ArrayList<>();
    if (rd.getHeaders() != null) {
      for (HttpHeader h : rd.getHeaders().all()) {
        boolean replaced = replace.keySet().stream().anyMatch(h::keyEquals);
        boolean staleType = h.keyEquals("Content-Type") && !alt.containsKey("bodyFileName")
            && !alt.containsKey("body");
        if (!replaced && !staleType) {
          headers.add(h);
        }
      }
    }
    for (Map.Entry<String, Object> e : replace.entrySet()) {
      headers.add(new HttpHeader(e.getKey(), String.valueOf(e.getValue())));
    }
    b.withHeaders(new HttpHeaders(headers));
    return b.build();
  }
}
