// Starts DynamoDB Local bound to 127.0.0.1 only. DynamoDB Local has no bind-address option and
// listens on every interface; this launcher builds its server exactly as its own main does
// (same command-line flags), binds the Jetty connector to loopback, then starts it.
// Run in Java's source-file mode: java -cp <DynamoDBLocal.jar>:<DynamoDBLocal_lib>/* LoopbackDynamoDB.java ...
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDB {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : server.getConnectors()) {
            if (connector instanceof ServerConnector serverConnector) {
                serverConnector.setHost("127.0.0.1");
                bound++;
            }
        }
        if (bound == 0) throw new IllegalStateException("no connector to bind to 127.0.0.1");
        proxy.start();
    }
}
