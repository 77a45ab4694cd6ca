/*
 * Launcher for the Apache Iceberg REST catalog test fixture that binds to one host only.
 *
 * org.apache.iceberg.rest.RESTCatalogServer (iceberg-open-api test fixtures) always listens on
 * every interface (`new Server(port)`, with SO_REUSEPORT). The e2e environment must bind to
 * 127.0.0.1 only, so this class builds the backend catalog exactly like RESTCatalogServer does
 * (its own private initializeBackendCatalog(), i.e. the same CATALOG_* environment variables)
 * and serves the same RESTCatalogServlet from a Jetty connector on one host
 * (-Dlakeform.rest.host, default 127.0.0.1) without SO_REUSEPORT, so a second instance on the
 * same port fails instead of silently sharing it.
 *
 * It lives in package org.apache.iceberg.rest because the adapter and the catalog context are
 * package-private; e2e/setup compiles it against the pinned jar and e2e/up puts both on one
 * class path (same class loader, so the same runtime package).
 */
package org.apache.iceberg.rest;

import java.lang.reflect.Method;
import org.apache.iceberg.util.PropertyUtil;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.gzip.GzipHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public final class LakeformLoopbackCatalogServer {
  private LakeformLoopbackCatalogServer() {}

  public static void main(String[] args) throws Exception {
    String host = System.getProperty("lakeform.rest.host", "127.0.0.1");

    Method init = RESTCatalogServer.class.getDeclaredMethod("initializeBackendCatalog");
    init.setAccessible(true);
    RESTCatalogServer.CatalogContext context =
        (RESTCatalogServer.CatalogContext) init.invoke(new RESTCatalogServer());
    int port = PropertyUtil.propertyAsInt(context.configuration(), RESTCatalogServer.REST_PORT, 8181);

    ServletContextHandler handler = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    handler.addServlet(
        new ServletHolder(new RESTCatalogServlet(new RESTServerCatalogAdapter(context))), "/*");
    handler.insertHandler(new GzipHandler());

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost(host);
    connector.setPort(port);
    server.addConnector(connector);
    server.setHandler(handler);
    server.start();
    System.err.println("lakeform: Iceberg REST catalog listening on http://" + host + ":" + port);
    server.join();
  }
}
