// The KRaft metadata quorum as one JSON line (leader, epoch, voters), asked through the Java admin client
// with a client properties file: `java -cp 'libs/*' MetadataQuorum.java admin.properties` (ops/stack.py).
import java.io.FileReader;
import java.util.Properties;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.QuorumInfo;

public class MetadataQuorum {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileReader in = new FileReader(args[0])) {
            props.load(in);
        }
        props.put("request.timeout.ms", "10000");
        props.put("default.api.timeout.ms", "20000");
        try (Admin admin = Admin.create(props)) {
            QuorumInfo quorum = admin.describeMetadataQuorum().quorumInfo().get();
            String voters = quorum.voters().stream()
                .map(v -> String.valueOf(v.replicaId())).collect(Collectors.joining(","));
            System.out.println("{\"leader\": " + quorum.leaderId() + ", \"epoch\": " + quorum.leaderEpoch()
                + ", \"voters\": [" + voters + "]}");
        }
    }
}
