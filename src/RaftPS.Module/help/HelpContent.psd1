# The text of the module's help. help/Build-Help.ps1 turns it, with the parameter metadata of the
# built cmdlets, into en-US/RaftPS.Module.dll-Help.xml (MAML). Edit here, then run:
#   dotnet pwsh ./build.ps1 build; dotnet pwsh src/RaftPS.Module/help/Build-Help.ps1
@{
    CommonParameters = @{
        Connection = 'The connection to use, as returned by Connect-RaftNode. Anything with Address and Port properties works too: a node from Start-RaftCluster, a leader from Get-RaftLeader. Without it, the current connection of this runspace is used; with none, the command fails with the error RaftNotConnected.'
        TimeoutSec = 'How long, in seconds, to keep retrying when the node is down, suspended or has no leader: calls back off from 50 ms to 1 s and go on through the other members of the cluster (learned from the node''s Status and from Start-RaftCluster), following the leader a node names. The default is 10. Then the command fails with RaftTimeout (OperationTimeout: nodes answered but none could serve) or RaftNodeUnreachable (ConnectionError: no node answered).'
        WhatIf     = 'Shows what would happen if the command ran. The command is not run.'
        Confirm    = 'Prompts you for confirmation before running the command.'
    }

    'Start-RaftCluster' = @{
        Synopsis    = 'Starts the nodes of a RaftPS cluster on this machine.'
        Description = @(
            'Starts one server process per node of the config file (lines of "ID HOST PORT"), or only the nodes given by -NodeId, for example to restart a stopped node. The servers run from the binaries shipped in the module folder (server/<platform>/RaftServer, for the operating system and processor PowerShell runs on); nothing is compiled.'
            'With -Count and no config file, it starts a local cluster of that many nodes on this machine: the first time, it writes the cluster''s config.conf on free ports of 127.0.0.1 into a folder of its own in your user data folder (RaftPS/clusters/<Name> under %LOCALAPPDATA% on Windows, ~/Library/Application Support on macOS, ~/.local/share on Linux); later starts of the same -Name reuse it, with its data. Remove that folder to start afresh.'
            'With -Join HOST:PORT and -NodeId, it starts nodes that join the running cluster of that member instead: each must have been added to it first (Add-RaftNode), and its address comes from the cluster.'
            'If this session has no current connection, it is connected to the first started node, so Set-RaftValue and Get-RaftValue work right away.'
            'Each node keeps its log and state in DataDirectory/node-ID and writes its output to node.log there. Data survives a restart given the same -DataDirectory.'
            'With all nodes, the command shows progress while it waits and returns once a leader is elected; with -NodeId, once the started nodes answer. It outputs one object per started node: Id, Address, Port, ProcessId (the server''s own process: stopping it stops the node), DataDirectory and LogPath.'
            'A node that exits during start-up writes the error RaftNodeExited, which quotes the end of its log. A node of the same config that this session already runs writes RaftNodeAlreadyRunning. The nodes this session started are stopped by Stop-RaftCluster, and when PowerShell exits.'
            'Extra server options (for example "--election-timeout-ms 300 --quiet") can be given in the environment variable RAFTPS_SERVER_ARGS.'
            'With -Secure the nodes serve clients over TLS only, require a client certificate of a throwaway CA and a token, talk to each other over peer TLS, and the session is connected with the admin certificate and token (even when it had a connection).'
        )
        Parameters  = @{
            ConfigPath    = 'The cluster''s config file: one node per line, "ID HOST PORT". The default is config.conf in the current location.'
            NodeId        = 'Starts only these nodes of the config (for example to restart a node stopped with Stop-RaftCluster -NodeId). With -Join, the nodes to start, which must be members of that cluster. Tab completion offers the ids of the config.'
            Join          = 'A member of a running cluster, as HOST:PORT: the -NodeId nodes join that cluster (the server is started with --join) instead of bootstrapping from the config. Each must have been added first (Add-RaftNode -AsLearner, or Add-RaftNode -Start does both). Also restarts such a node: its data directory then holds the cluster''s configuration. Their addresses come from the cluster; the config file only names the group that Stop-RaftCluster -ConfigPath stops.'
            DataDirectory = 'The folder that holds each node''s data (DataDirectory/node-ID) and log. The default is ./data. Use the same folder to restart a node with its data.'
            TimeoutSec    = 'How long, in seconds, to wait for a leader (or, with -NodeId, for the nodes to answer). The default is 30. The nodes keep running if the wait times out (error RaftClusterStartTimeout).'
            Secure        = 'Starts the nodes with client TLS, client certificates, tokens and peer TLS: makes (the first time, or when the node certificate is due or the hosts changed) a throwaway CA (its key kept as ca.key.pem, to sign the peer certificates of nodes added later), a node certificate naming the config''s hosts and the loopback names, a peer certificate per node naming that node (peer-ID.pem), an admin client certificate and an admin token in DataDirectory/tls (keys and token readable by you only), starts the nodes with --cert-file, --key-file, --client-ca-file, --auth-file, --peer-cert-file, --peer-key-file and --peer-ca-file, and connects this session with them. Users added to DataDirectory/tls/users with New-RaftUserToken -AuthFile before the start stay. See docs/security.md.'
            Count         = 'Starts a local cluster of this many nodes (1 to 9; 3 or 5 tolerate 1 or 2 failed nodes) on 127.0.0.1, with no config file of yours: its config and data live in your user data folder (see the description). A -Name used before with another count writes the error RaftLocalClusterMismatch; a port of the cluster that something else listens on (another session running it), RaftLocalClusterPortInUse.'
            Name          = 'With -Count: the name of the local cluster, so several can be kept side by side. The default is "local". Letters, digits, ".", "_" and "-". Tab completion offers the local clusters made so far.'
        }
        Inputs      = @()
        Outputs     = @{ 'RaftPS.RaftNodeProcess' = 'One per started node: Id, Address, Port, ProcessId, DataDirectory, LogPath.' }
        Examples    = @(
            @{ Title = 'Try RaftPS with no config file'
               Code = "Start-RaftCluster -Count 3`nSet-RaftValue a 1`nGet-RaftValue a`nStop-RaftCluster"
               Remarks = 'Starts a local cluster of three nodes (its config and data in your user data folder), connects the session to it, writes and reads a value, and stops the nodes. The next Start-RaftCluster -Count 3 finds the value again.' }
            @{ Title = 'Start the cluster of config.conf'
               Code = 'Start-RaftCluster'
               Remarks = 'Starts the three nodes of the original example config (0 127.0.0.1 50000, 1 127.0.0.1 50001, 2 127.0.0.1 50002), keeps their data under ./data and returns once they elect a leader.' }
            @{ Title = 'Restart one node with its data'
               Code = "Stop-RaftCluster -NodeId 2`nStart-RaftCluster -NodeId 2"
               Remarks = 'Node 2 comes back with the log and values it had, and catches up with the others.' }
            @{ Title = 'A cluster from another config, its data in a temporary folder'
               Code = "`$nodes = Start-RaftCluster ./test.conf -DataDirectory (Join-Path `$env:TEMP raft) -TimeoutSec 60`n`$nodes | Get-RaftStatus"
               Remarks = 'The nodes pipe into the other cmdlets as connections.' }
            @{ Title = 'A local cluster with TLS and tokens'
               Code = "Start-RaftCluster -Count 3 -Name secure -Secure`nSet-RaftValue a 1`nGet-RaftValue a"
               Remarks = 'The nodes serve clients over TLS with client certificates and tokens; the session is connected with the admin certificate and token kept in the cluster''s tls folder.' }
        )
        Links       = @('Stop-RaftCluster', 'Connect-RaftNode', 'Get-RaftStatus')
    }

    'Stop-RaftCluster' = @{
        Synopsis    = 'Stops the nodes of a RaftPS cluster that this session started.'
        Description = @(
            'Stops the server processes that Start-RaftCluster started in this session for the config file, or only the -NodeId ones: each gets a termination signal and 2 seconds to exit, then is killed (on Windows, killed at once: a node''s state is on disk before it answers, so nothing acknowledged is lost). Their data stays in the data directory.'
            'Without -ConfigPath it stops the nodes of ./config.conf if this session runs any, else every cluster this session started (a local cluster of Start-RaftCluster -Count among them); with -NodeId too, that must name one cluster (error RaftClusterAmbiguous otherwise). A current connection to a cluster that is now stopped is cleared.'
            'A -NodeId that this session did not start writes the error RaftNodeNotStarted (ObjectNotFound).'
        )
        Parameters  = @{
            ConfigPath = 'The config file the nodes were started from. The default is config.conf in the current location, or, when this session runs none of its nodes, every cluster this session started.'
            NodeId     = 'Stops only these nodes. Tab completion offers the ids of the config.'
        }
        Inputs      = @()
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'Stop the cluster'; Code = 'Stop-RaftCluster'; Remarks = 'Stops every node of config.conf that this session started.' }
            @{ Title = 'Crash the leader and watch another node take over'
               Code = "`$leader = Get-RaftLeader`nStop-RaftCluster -NodeId `$leader.Id`nGet-RaftLeader"
               Remarks = 'Get-RaftLeader retries through the other members until a new leader, with a higher term, is elected.' }
        )
        Links       = @('Start-RaftCluster')
    }

    'Connect-RaftNode' = @{
        Synopsis    = 'Connects to a node of a RaftPS cluster.'
        Description = @(
            'Returns a connection to the node at the address and port (Address, Port, ClientId). Unless -NotDefault is given, it becomes the current connection of this runspace, which the other cmdlets use when -Connection is not given. The current connection is per runspace, so ForEach-Object -Parallel workers each connect their own.'
            'No call is made yet: the node need not be up. The cmdlets send each call to this node first and, when it is down or has no leader, retry through the other members of its cluster.'
            'A connection carries a client id and numbers its writes, so a write retried after an error applies exactly once.'
            'This is the original client''s "connect SERVER_ADDRESS SERVER_PORT_NUMBER".'
            'With -UseTls the calls go over TLS, checked against -CaCertificatePath, with a client certificate when given; with -Token or -Credential every call carries the token. A node that refuses the token writes RaftUnauthenticated (AuthenticationError); a call the user''s role does not cover, RaftPermissionDenied (PermissionDenied). See docs/security.md.'
        )
        Parameters  = @{
            Address    = 'Host name or IP address of the node, as in config.conf.'
            Port       = 'The node''s port, as in config.conf.'
            NotDefault = 'Returns the connection without making it the current one; pass it with -Connection.'
            UseTls     = 'Connects over TLS, to nodes started with --cert-file. A plain connection to such a node fails with RaftTlsRequired; a TLS connection to a plain node, or one whose certificate is not trusted, expired or does not name the address, fails with RaftTlsFailed (SecurityError), with no retry.'
            CaCertificatePath = 'The PEM certificate of the CA that issued the nodes'' certificates (New-RaftCertificate CA); every certificate of the file is trusted (a bundle: list a new CA beside the old one while certificates are reissued). Chains are built through the intermediates the node sends, never through anything downloaded. Without it, the machine''s trust store decides.'
            Certificate = 'A client certificate with its private key, for nodes that require one (--client-ca-file).'
            CertificateThumbprint = 'A client certificate with a private key from your personal certificate store (CurrentUser\My), else the machine''s (LocalMachine\My), by thumbprint.'
            CertificatePath = 'A client certificate as a PEM file (New-RaftCertificate Client); its key is read from -CertificateKeyPath, else from NAME.key.pem beside NAME.pem, else from the same file.'
            CertificateKeyPath = 'The PEM private key of -CertificatePath.'
            Token      = 'The token of a user of the nodes'' --auth-file, as a SecureString (New-RaftUserToken outputs one). Every call carries it; it is never shown. Without -UseTls it travels in plain text, and a warning says so.'
            Credential = 'The token as the password of a credential (Get-Credential); the user name is not sent, the node knows the user by the token.'
        }
        Inputs      = @{ 'System.String, System.Int32' = 'Address and Port bind by property name, so nodes from Start-RaftCluster can be piped in.' }
        Outputs     = @{ 'RaftPS.RaftConnection' = 'The connection: Address, Port, ClientId.' }
        Examples    = @(
            @{ Title = 'The original walkthrough: connect, find the leader, read and write'
               Code = "Connect-RaftNode 127.0.0.1 50001`nGet-RaftLeader`nGet-RaftValue key1`nSet-RaftValue key1 100`nGet-RaftValue key1"
               Remarks = 'Connects to the node on the second port. Get-RaftLeader shows the leader (for example 0 127.0.0.1 50000). key1 is not there yet: Get-RaftValue writes the error RaftKeyNotFound. Set-RaftValue writes it through this node, which forwards it to the leader, and Get-RaftValue then gives 100.' }
            @{ Title = 'A second connection beside the current one'
               Code = "`$other = Connect-RaftNode 127.0.0.1 50002 -NotDefault`nGet-RaftStatus -Connection `$other"
               Remarks = 'The current connection is unchanged.' }
            @{ Title = 'TLS with a client certificate and a token'
               Code = "`$token = Read-Host -AsSecureString 'token'`nConnect-RaftNode db1 50000 -UseTls -CaCertificatePath ./pki/ca.pem -CertificatePath ./pki/ci.pem -CertificateKeyPath ./pki/ci.key.pem -Token `$token"
               Remarks = 'Every call of the session goes over TLS, trusting only that CA, with the client certificate and the token.' }
        )
        Links       = @('Disconnect-RaftNode', 'Get-RaftLeader', 'Start-RaftCluster')
    }

    'Disconnect-RaftNode' = @{
        Synopsis    = 'Clears the current RaftPS connection of this runspace.'
        Description = @(
            'Clears the current connection, so the cmdlets need -Connection or a new Connect-RaftNode. Given -Connection, it clears the current connection only if it is that node. With no current connection and no -Connection, it fails with RaftNotConnected.'
        )
        Parameters  = @{}
        Inputs      = @{ 'RaftPS.RaftConnection' = 'A connection can be piped in.' }
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'Disconnect'; Code = "Disconnect-RaftNode`nGet-RaftLeader"; Remarks = 'Get-RaftLeader now fails with RaftNotConnected until Connect-RaftNode is run again.' }
        )
        Links       = @('Connect-RaftNode')
    }

    'Get-RaftLeader' = @{
        Synopsis    = 'Gets the leader of the cluster.'
        Description = @(
            'Asks the node for the cluster''s leader and outputs its Id, Address, Port and Term. While no leader is known (during an election, or the node is suspended or down), it retries with back-off through the other members until -TimeoutSec.'
            'This is the original client''s "getleader".'
        )
        Parameters  = @{}
        Inputs      = @{ 'RaftPS.RaftConnection' = 'Connections, or nodes from Start-RaftCluster, can be piped in.' }
        Outputs     = @{ 'RaftPS.RaftLeader' = 'Id, Address, Port, Term.' }
        Examples    = @(
            @{ Title = 'Find the leader'; Code = 'Get-RaftLeader'; Remarks = "Id Address   Port  Term`n-- -------   ----  ----`n 0 127.0.0.1 50000    1" }
            @{ Title = 'The original''s second walkthrough: suspend the leader, another takes over'
               Code = "Connect-RaftNode 127.0.0.1 50000`nGet-RaftLeader`nSuspend-RaftNode 2`nGet-RaftLeader"
               Remarks = 'Node 0 leads; suspended for 2 seconds it stops answering, the others elect a new leader with a higher term, and Get-RaftLeader (retrying through the other members) shows it, for example 2 127.0.0.1 50002.' }
            @{ Title = 'Connect to the leader'; Code = 'Get-RaftLeader | Connect-RaftNode'; Remarks = 'Address and Port bind by property name.' }
        )
        Links       = @('Get-RaftStatus', 'Connect-RaftNode')
    }

    'Set-RaftValue' = @{
        Synopsis    = 'Writes a value under a key in the cluster.'
        Description = @(
            'Writes the value under the key and returns once the write is committed by a majority of the cluster. Through a follower, the write is forwarded to the leader. If the node is down or the leader changes, the write is retried through the other members until -TimeoutSec; the connection''s client id and sequence number make a retried write apply exactly once.'
            'Key and Value bind from the pipeline by property name (Import-Csv kv.csv | Set-RaftValue). Fed a pipeline, the command gathers the input into batches of up to 128 items (and 3 MiB) and sends each batch as one SetMany call, each item still its own log entry with its own sequence number: a batch is sent when it is full, and the rest at the end of the input, so outputs and errors of a slow pipeline appear batch by batch. Up to 8 batches are in flight; outputs and errors come out in input order, each error naming its own key. -WhatIf and -Confirm are asked per item before it joins a batch. A single value, or a server without SetMany, is written with one Set call per item.'
            'With -IfRevision, -IfAbsent or -IfValue the write happens only if the key is still as given when the write is applied (compare-and-set, checked by the state machine in log order): its revision is that number (Get-RaftValue outputs it), it does not exist, or it has that value. When the condition does not hold nothing changes and the command writes the non-terminating error RaftConflict, whose target is the key and whose exception says the key''s current revision (CurrentRevision; 0 when the key does not exist): category ResourceExists for -IfAbsent, InvalidOperation otherwise. A conditional write retried after a lost reply answers its first outcome. Each conditional item is its own call (up to 128 in flight), not a batch.'
            'With -TtlSec the command grants one lease of that many seconds (per connection, at its first item) and attaches every key it writes to it: the keys are deleted together when the lease expires, about -TtlSec seconds later (nothing keeps it alive). Writing a key again without -TtlSec detaches it.'
            'An empty key, a key over 1 KiB or a value over 1 MiB writes the error RaftInvalidArgument (InvalidArgument); a request larger than the node accepts at all (its --max-request-bytes) writes RaftResourceExhausted (LimitsExceeded) at once. A node with too many writes pending refuses them for a moment: the command sends them again after the pause the node asks for, until -TimeoutSec, and then writes RaftResourceExhausted.'
            'When the cluster''s storage quota is used up (the server''s --quota-bytes, 2 GiB of keys and values by default), each write is refused with the non-terminating error RaftNoSpace (QuotaExceeded), whose target is the key: nothing is written. Reads and deletes still work; once deletes bring the keys and values to 90% of the quota, writes are taken again. Get-RaftStatus shows the alarm (NoSpaceAlarm) and the bytes used (LiveBytes).'
            'This is the original client''s "setval KEY VAL".'
        )
        Parameters  = @{
            Key        = 'The key. Keys are case-sensitive. Tab completion offers the keys this session has used.'
            Value      = 'The value, stored as UTF-8 text. An empty string is a value.'
            PassThru   = 'Outputs the written value (Key, Value, Revision) once it is committed.'
            IfRevision = 'Writes only if the key''s revision (the Revision that Get-RaftValue outputs) is this number; 0 means only if the key does not exist. Otherwise the error RaftConflict (InvalidOperation).'
            IfAbsent   = 'Writes only if the key does not exist. Otherwise the error RaftConflict (ResourceExists).'
            IfValue    = 'Writes only if the key exists and has this value. Otherwise the error RaftConflict (InvalidOperation).'
            TtlSec     = 'Attaches the keys to a lease of this many seconds (1 to 2592000, 30 days): they are deleted when it expires. One lease is granted per command and connection.'
        }
        Inputs      = @{ 'System.String' = 'Key and Value bind by property name: objects from Import-Csv, or [pscustomobject]@{Key=...; Value=...}.' }
        Outputs     = @{ 'None' = 'By default, no output.'; 'RaftPS.RaftValue' = 'With -PassThru: the written Key and Value and the key''s new Revision.' }
        Examples    = @(
            @{ Title = 'Write a value (the original walkthrough)'; Code = "Set-RaftValue key1 100`nGet-RaftValue key1"; Remarks = 'Get-RaftValue gives key1 100.' }
            @{ Title = 'Load a CSV file'; Code = 'Import-Csv kv.csv | Set-RaftValue'; Remarks = 'kv.csv has the columns Key and Value. The writes go in batches of up to 128 per call.' }
            @{ Title = 'Write many values and see them'; Code = "1..1000 | ForEach-Object { [pscustomobject]@{ Key = ""user`$_""; Value = ""name `$_"" } } | Set-RaftValue -PassThru"; Remarks = 'Outputs each written value, in input order.' }
            @{ Title = 'See what would be written'; Code = 'Set-RaftValue key1 200 -WhatIf'; Remarks = 'Nothing is written.' }
            @{ Title = 'Update a value only if nobody changed it since it was read'
               Code = "`$v = Get-RaftValue counter`nSet-RaftValue counter (1 + `$v.Value) -IfRevision `$v.Revision -ErrorVariable conflict`nif (`$conflict) { 'someone else wrote it first: read it again and retry' }"
               Remarks = 'Of several scripts doing this at once, exactly one succeeds for each revision; the others get RaftConflict and no change.' }
            @{ Title = 'Create a key only if it does not exist'; Code = 'Set-RaftValue config/owner ([Environment]::MachineName) -IfAbsent'; Remarks = 'A second run writes RaftConflict (ResourceExists) naming the key''s revision.' }
            @{ Title = 'A value that expires'; Code = 'Set-RaftValue session/abc token -TtlSec 60'; Remarks = 'The key is deleted about 60 seconds later; watchers see the delete.' }
            @{ Title = 'Find out that the storage quota is used up'
               Code = "Set-RaftValue big/1 (`"x`" * 1MB) -ErrorVariable failed -ErrorAction SilentlyContinue`nif (`$failed.FullyQualifiedErrorId -like 'RaftNoSpace*') { Get-RaftValue 'big/*' | Select-Object -First 10 | Remove-RaftValue }"
               Remarks = 'RaftNoSpace names the key that was not written; deleting keys frees space, and writes resume once the cluster is at 90% of its quota.' }
        )
        Links       = @('Get-RaftValue', 'Remove-RaftValue', 'Watch-RaftValue', 'Lock-RaftKey')
    }

    'Get-RaftValue' = @{
        Synopsis    = 'Gets the values of keys from the cluster.'
        Description = @(
            'Outputs the Key, Value and Revision of each key found (also CreateRevision, Version and Lease: Format-List shows them). Revision is the cluster revision of the write that set the value: it grows with every change of the cluster, and Set-RaftValue -IfRevision and Remove-RaftValue -IfRevision compare it. Reads are linearizable: a node that is not the leader asks the leader for the commit index before it answers, so a read sees every write committed before it started.'
            'A missing key writes a non-terminating error, RaftKeyNotFound (ObjectNotFound), and no output, as Get-Variable does; the other keys are still read.'
            'A key with wildcards (* ? [ ]) lists the matching keys in key order, page by page, with no error when none match. Matching is case-sensitive, as keys are.'
            'This is the original client''s "getval KEY".'
        )
        Parameters  = @{
            Key = 'The keys to read; wildcards list the matching keys. Keys bind from the pipeline, by value or by the property name Key. Tab completion offers the keys this session has used.'
        }
        Inputs      = @{ 'System.String[]' = 'Keys, or objects with a Key property.' }
        Outputs     = @{ 'RaftPS.RaftValue' = 'Key, Value, Revision (and CreateRevision, Version, Lease).' }
        Examples    = @(
            @{ Title = 'Read a key (the original walkthrough)'; Code = "Get-RaftValue key1"; Remarks = "Key  Value Revision`n---  ----- --------`nkey1 100          2`nBefore Set-RaftValue key1 100, the same command writes: Cannot find a value with the key 'key1'." }
            @{ Title = 'List keys with a wildcard'; Code = 'Get-RaftValue user*'; Remarks = 'Every key that starts with "user", in key order.' }
            @{ Title = 'Read many keys, ignoring missing ones'; Code = "'a', 'b', 'c' | Get-RaftValue -ErrorAction SilentlyContinue"; Remarks = 'Outputs the keys found.' }
            @{ Title = 'Export the store'; Code = 'Get-RaftValue * | Export-Csv kv.csv'; Remarks = 'Import-Csv kv.csv | Set-RaftValue loads it back.' }
        )
        Links       = @('Set-RaftValue', 'Remove-RaftValue')
    }

    'Remove-RaftValue' = @{
        Synopsis    = 'Removes keys from the cluster.'
        Description = @(
            'Deletes each key and returns once the deletion is committed. A missing key writes the non-terminating error RaftKeyNotFound (ObjectNotFound), as Get-RaftValue does. Retried deletions apply once.'
            'With -IfRevision or -IfValue a key is deleted only if its revision, or its value, is still the one given; otherwise it stays and the command writes the non-terminating error RaftConflict (InvalidOperation) with the key as target and its current revision in the exception (CurrentRevision; 0 when it does not exist).'
        )
        Parameters  = @{
            Key        = 'The keys to remove (no wildcards). Keys bind from the pipeline, by value or by the property name Key.'
            IfRevision = 'Deletes only if the key''s revision (from Get-RaftValue) is this number. Otherwise the error RaftConflict.'
            IfValue    = 'Deletes only if the key has this value. Otherwise the error RaftConflict.'
        }
        Inputs      = @{ 'System.String[]' = 'Keys, or objects with a Key property (Get-RaftValue output).' }
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'Remove a key'; Code = 'Remove-RaftValue key1'; Remarks = '' }
            @{ Title = 'Remove every key that starts with "tmp"'; Code = 'Get-RaftValue tmp* | Remove-RaftValue'; Remarks = 'Add -WhatIf to see which keys would go.' }
            @{ Title = 'Remove a key only if it did not change since it was read'; Code = "`$v = Get-RaftValue job/claim`nRemove-RaftValue job/claim -IfRevision `$v.Revision"; Remarks = 'If another script wrote it meanwhile, the key stays and RaftConflict names its new revision.' }
        )
        Links       = @('Get-RaftValue', 'Set-RaftValue')
    }

    'Suspend-RaftNode' = @{
        Synopsis    = 'Suspends a node for a number of seconds, as if its process were paused.'
        Description = @(
            'Asks the connected node to behave as if paused for the period: it rejects every request and sends nothing, then resumes from its durable state. The command returns as soon as the node has accepted the suspension; it does not wait the period out. If the node was the leader, the others elect a new one.'
            'The call goes to the connected node only; it is never passed on to another member.'
            'A node accepts it only if its server was started with --allow-suspend, as Start-RaftCluster starts the nodes of its local clusters; any other node refuses it, and the command writes the error RaftPermissionDenied (PermissionDenied) with the node''s message.'
            'This is the original client''s "suspend PERIOD".'
        )
        Parameters  = @{
            Seconds = 'How long the node stays suspended, in seconds (fractions allowed).'
        }
        Inputs      = @{ 'RaftPS.RaftConnection' = 'Connections, or nodes from Start-RaftCluster, can be piped in.' }
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'The original''s second walkthrough'
               Code = "Connect-RaftNode 127.0.0.1 50000`nGet-RaftLeader`nSuspend-RaftNode 2`nGet-RaftLeader"
               Remarks = 'Node 0 is suspended for 2 seconds; another node becomes leader with a higher term.' }
            @{ Title = 'Suspend the leader, whichever node it is'; Code = 'Get-RaftLeader | Suspend-RaftNode 5'; Remarks = 'The leader binds as the connection.' }
        )
        Links       = @('Get-RaftLeader', 'Get-RaftStatus')
    }

    'Get-RaftStatus' = @{
        Synopsis    = 'Gets the state of a node: role, term, leader, indexes, members and replication progress.'
        Description = @(
            'Asks the connected node (only that node) for its Status: Id, Role (Follower, PreCandidate, Candidate, Leader), Term, Leader and LeaderId, CommitIndex, AppliedIndex, the log range (FirstIndex, LastIndex), snapshot index and term, LogBytes, the Members of the cluster and, on the leader, each follower''s Peers progress (MatchIndex, NextIndex, Reachable).'
            'The storage quota: LiveBytes (the bytes of keys and values, which the quota measures), QuotaBytes (the server''s --quota-bytes) and NoSpaceAlarm, true while the node refuses writes because the quota is used up (the table''s Alarm column says NOSPACE; Set-RaftValue writes RaftNoSpace). The leader decides and shows the alarm: writes through a follower are refused by the leader, and a follower shows the alarm only if it raised it while it led.'
            'The cluster''s members it reports are remembered, so later calls can retry through them.'
            'With -All, every member of the cluster is asked for its own status, all at once, each once with a deadline of -TimeoutSec or 2 seconds, whichever is shorter: one RaftNodeStatus row per member (Endpoint, Id, IsLeader, Role, Term, CommitIndex, AppliedIndex, LastIndex, Lag behind the leader''s commit index, LogBytes, SinceLeaderContact, ReadsTotal, WritesTotal, FsyncP99, NoSpaceAlarm, Health and Error). A member that does not answer is a row too: Health Suspended (Suspend-RaftNode) or Unreachable (down, or cut off), with the reason in Error. The table view is that of etcdctl endpoint status -w table. The members are those the connected node lists, or those this session already knows when it does not answer.'
        )
        Parameters  = @{
            All = 'One row per member of the cluster (RaftNodeStatus) instead of the connected node''s status.'
        }
        Inputs      = @{ 'RaftPS.RaftConnection' = 'Connections, or nodes from Start-RaftCluster, can be piped in.' }
        Outputs     = @{ 'RaftPS.RaftStatus' = 'The node''s state.'; 'RaftPS.RaftNodeStatus' = 'With -All: one row per member.' }
        Examples    = @(
            @{ Title = 'The status of the connected node'; Code = 'Get-RaftStatus | Format-List'; Remarks = '' }
            @{ Title = 'Every node of a cluster started here'; Code = 'Start-RaftCluster | Get-RaftStatus'; Remarks = 'One row per node: Id, Role, Term, LeaderId, CommitIndex, AppliedIndex, FirstIndex, LastIndex, Peers.' }
            @{ Title = 'Replication progress on the leader'; Code = '(Get-RaftLeader | Get-RaftStatus).Peers'; Remarks = '' }
            @{ Title = 'Every member at a glance'; Code = 'Get-RaftStatus -All'; Remarks = 'Endpoint, Id, IsLeader, Role, Term, Commit, Applied, Lag, LogSize, Health and Error, one row per member; unreachable members included.' }
        )
        Links       = @('Get-RaftLeader', 'Watch-RaftCluster')
    }

    'Get-RaftMember' = @{
        Synopsis    = 'Gets the members of the cluster: voters and learners, as the leader sees them.'
        Description = @(
            'Asks the cluster''s leader (a follower forwards the call) for the members of the configuration in effect: each member''s Id, Address, Port, Role (Voter or Learner), IsLeader, MatchIndex (the last log entry the leader knows it holds), Behind (how many committed entries it lacks), CaughtUp (its log reached the commit index within the last election timeout or two: it keeps pace, and a learner in this state can be promoted) and Reachable (the leader heard from it within the last election timeout or two; a change is refused when the voters it would leave that the leader can reach are not a majority).'
            'An -Id that is not a member writes the non-terminating error RaftMemberNotFound (ObjectNotFound). The members are remembered for tab completion of ids and for retries.'
        )
        Parameters  = @{
            Id = 'Only these members. Tab completion offers the ids this session has seen.'
        }
        Inputs      = @{ 'RaftPS.RaftConnection' = 'Connections, or nodes from Start-RaftCluster, can be piped in.' }
        Outputs     = @{ 'RaftPS.RaftMember' = 'One per member: Id, Address, Port, Role, IsLeader, MatchIndex, Behind, CaughtUp, Reachable.' }
        Examples    = @(
            @{ Title = 'The members of the cluster'; Code = 'Get-RaftMember'; Remarks = 'A table like etcdctl member list, with the leader''s view of each member.' }
            @{ Title = 'Learners that have not caught up'; Code = 'Get-RaftMember | Where-Object { $_.Role -eq ''Learner'' -and -not $_.CaughtUp }'; Remarks = '' }
        )
        Links       = @('Add-RaftNode', 'Remove-RaftNode', 'Move-RaftLeader')
    }

    'Add-RaftNode' = @{
        Synopsis    = 'Adds a node to the cluster: as a learner, then as a voter once it has caught up.'
        Description = @(
            'Adds the node the safe way (etcd''s member add --learner, then member promote): first as a learner, which receives the log (or the leader''s snapshot) but does not vote or count for any majority, so a new node that is slow to start or far behind never weakens the cluster; then, once the leader sees its log keep pace with the commit index (reach it within the last election timeout or two), as a voter. The command shows progress while the node catches up and outputs the member when it is a voter. -AsLearner stops after the first step; run Add-RaftNode again later to promote the learner.'
            'The node''s server is started with --join: on this machine, -Start does it (the process belongs to this session, like Start-RaftCluster''s); on another host, run "RaftServer ID --join HOST:PORT --data-dir DIR" there, where HOST:PORT is any member, after this command has added the node.'
            'One membership change runs at a time: a change while another is not yet committed writes RaftRefused (InvalidOperation), as does a change after which the voters the leader can reach would not be a majority. An id that is a member at another address writes RaftMemberExists (ResourceExists); an id that was removed is never added again: a replacement joins under a new id. A node that does not catch up within -CatchUpTimeoutSec writes RaftCatchUpTimeout and stays a learner.'
        )
        Parameters  = @{
            Id                = 'The new node''s id: a whole number no member has or had.'
            Address           = 'Where the new node''s server listens: a host name or IP address the other nodes can reach. The default is 127.0.0.1.'
            Port              = 'The port of the new node''s server.'
            AsLearner         = 'Adds the node as a learner only, and returns at once.'
            Start             = 'Also starts a local server process for the node, joining the cluster through the connected node. Its data and log go to DataDirectory/node-ID. For a cluster started with Start-RaftCluster -Secure (its files in DataDirectory/tls), the node gets the same client TLS and auth options and a peer TLS certificate of its own; a TLS connection without those files writes RaftSecureFilesMissing.'
            DataDirectory     = 'With -Start: the folder of the nodes'' data directories. The default is ./data.'
            ConfigPath        = 'With -Start: the config file whose nodes the new one is grouped with, so that Stop-RaftCluster -ConfigPath stops it too. The default is config.conf.'
            CatchUpTimeoutSec = 'How long, in seconds, to wait for the node to catch up before promoting it. The default is 300.'
        }
        Inputs      = @{ 'System.Management.Automation.PSObject' = 'Objects with Id, Address and Port properties bind by property name.' }
        Outputs     = @{ 'RaftPS.RaftMember' = 'The added member, once it is a voter (or a learner, with -AsLearner).' }
        Examples    = @(
            @{ Title = 'Grow a local cluster from 3 to 5 nodes'
               Code = "Add-RaftNode -Id 3 -Port 50003 -Start`nAdd-RaftNode -Id 4 -Port 50004 -Start`nGet-RaftMember"
               Remarks = 'Each node is started here, catches up as a learner and becomes a voter.' }
            @{ Title = 'Add a node on another host'
               Code = "Add-RaftNode -Id 3 -Address db3.example.net -Port 50000 -AsLearner`n# on db3: RaftServer 3 --join db1.example.net:50000 --data-dir /var/lib/raftps`nAdd-RaftNode -Id 3 -Address db3.example.net -Port 50000"
               Remarks = 'The second Add-RaftNode waits for node 3 to catch up, then promotes it.' }
        )
        Links       = @('Get-RaftMember', 'Remove-RaftNode', 'Start-RaftCluster')
    }

    'Remove-RaftNode' = @{
        Synopsis    = 'Removes nodes from the cluster.'
        Description = @(
            'Removes each member from the configuration, one change at a time, each committed before the next. Removing the leader first hands leadership to the most up-to-date voter, which then removes it, so the cluster is never without a leader for an election timeout.'
            'The removed node''s process keeps running but no longer takes part (it says so in its log); stop it with Stop-RaftCluster, or on its host. Its id is never added again.'
            'A change that would leave the leader without a reachable majority of voters (for example removing a voter of a two-node cluster while the other is down) writes RaftRefused and changes nothing; an id that is not a member writes RaftMemberNotFound.'
        )
        Parameters  = @{
            Id = 'The members to remove. Member objects from Get-RaftMember bind by property name. Tab completion offers the ids this session has seen.'
        }
        Inputs      = @{ 'RaftPS.RaftMember' = 'Members from Get-RaftMember bind by their Id.' }
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'Replace a failed machine'
               Code = "Add-RaftNode -Id 5 -Address db5.example.net -Port 50000`nRemove-RaftNode -Id 2"
               Remarks = 'Add the replacement first, then remove the failed node: the cluster keeps its majority throughout.' }
            @{ Title = 'Shrink a cluster'; Code = 'Get-RaftMember | Where-Object Id -ge 3 | Remove-RaftNode -Confirm:$false'; Remarks = '' }
        )
        Links       = @('Add-RaftNode', 'Get-RaftMember')
    }

    'Move-RaftLeader' = @{
        Synopsis    = 'Hands the leadership to another voter (etcdctl move-leader).'
        Description = @(
            'The leader brings the target''s log up to date and tells it to stand for election at once (Raft thesis 3.10). Writes are refused for the few milliseconds this takes; the module retries them. Outputs the new leader.'
            'Without -To, the most up-to-date voter takes over: use it to drain a leader before maintenance. A -To that is not a member writes RaftMemberNotFound; a learner writes RaftRefused.'
        )
        Parameters  = @{
            To = 'The voter to hand leadership to. Tab completion offers the ids this session has seen.'
        }
        Inputs      = @{ 'RaftPS.RaftConnection' = 'A connection can be piped in.' }
        Outputs     = @{ 'RaftPS.RaftLeader' = 'The new leader: Id, Address, Port, Term.' }
        Examples    = @(
            @{ Title = 'Drain the leader before maintenance'; Code = "Move-RaftLeader`nGet-RaftLeader"; Remarks = '' }
            @{ Title = 'Move the leadership to node 2'; Code = 'Move-RaftLeader -To 2'; Remarks = '' }
        )
        Links       = @('Get-RaftLeader', 'Get-RaftMember')
    }

    'Resume-RaftNode' = @{
        Synopsis    = 'Ends a node''s suspension early.'
        Description = @(
            'A node suspended with Suspend-RaftNode answers only this call: it resumes at once from its data directory, as it would when its suspension ends.'
        )
        Parameters  = @{}
        Inputs      = @{ 'RaftPS.RaftConnection' = 'Connections, or nodes from Start-RaftCluster, can be piped in.' }
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'Suspend a node for an hour, then change your mind'; Code = "Suspend-RaftNode 3600`nResume-RaftNode"; Remarks = '' }
        )
        Links       = @('Suspend-RaftNode')
    }

    'New-RaftClusterConfig' = @{
        Synopsis    = 'Writes a config.conf for a cluster of the given hosts.'
        Description = @(
            'Writes the config file a cluster starts from: one line "ID HOST PORT" per host, ids from 0 in the order given. A host given without a port gets -Port (50000 by default) plus the number of earlier nodes on the same host, so three nodes on one machine get three ports and nodes on three machines the same one. A host can be a name or an IP address, with or without ":port"; an IPv6 address with a port goes in brackets ("[fd00::5]:50000").'
            'Copy the file to every machine of the cluster and start each node there with Start-RaftCluster -NodeId <id> (or as a service: docs/operations.md). Every node must be given the same file.'
            'Nothing is written when an entry is wrong (error RaftInvalidHost), two nodes would share an address and port (RaftDuplicateEndpoint), or the file exists and -Force is not given (RaftConfigExists). An even number of nodes gets a warning: it survives no more failures than one node fewer.'
        )
        Parameters  = @{
            HostName = 'The nodes'' hosts, in id order: names or IP addresses, each optionally with ":port" (an IPv6 address then in brackets: "[fd00::5]:50000"). Also taken from the pipeline.'
            Port     = 'The port of a host given without one; the second node on the same host gets the next port, and so on. The default is 50000.'
            Path     = 'The file to write. The default is config.conf in the current location.'
            Force    = 'Replaces the file if it exists.'
        }
        Inputs      = @{ 'System.String' = 'Host names can be piped in.' }
        Outputs     = @{ 'System.IO.FileInfo' = 'The file written.' }
        Examples    = @(
            @{ Title = 'Three machines'
               Code = 'New-RaftClusterConfig -HostName db1, db2, db3'
               Remarks = "Writes ./config.conf:`n0 db1 50000`n1 db2 50000`n2 db3 50000" }
            @{ Title = 'Three nodes on this machine, from port 6000'
               Code = "New-RaftClusterConfig 127.0.0.1, 127.0.0.1, 127.0.0.1 -Port 6000 -Path ./dev.conf`nStart-RaftCluster ./dev.conf"
               Remarks = 'Node 0 listens on 6000, node 1 on 6001, node 2 on 6002.' }
            @{ Title = 'Ports of your own, replacing the existing file'
               Code = "'10.0.0.5:7000', '10.0.0.6:7000', 'db3.example.com:7100' | New-RaftClusterConfig -Force"
               Remarks = '' }
        )
        Links       = @('Start-RaftCluster')
    }

    'New-RaftCertificate' = @{
        Synopsis    = 'Makes a CA, node or client certificate as PEM files, for a deployment with TLS.'
        Description = @(
            'Makes a certificate with .NET''s CertificateRequest (no openssl) and writes it as NAME.pem with its private key in NAME.key.pem (PKCS#8; on Unix the key file is created readable by you only) in -Path. Keys are ECDSA P-256, signatures SHA-256.'
            'CA: a self-signed certificate authority (10 years by default). Keep its key (NAME.key.pem) off the nodes: it signs everything.'
            'Node: a node''s certificate, signed by the CA of -IssuerPath, naming every -HostName (host names and IP addresses clients reach the node by) as subject alternative names, for server and client authentication. Give it to the node with --cert-file and --key-file. With -NodeId it also names the node (the URI raftps://node/ID) and serves for peer TLS too: give it to the node with --peer-cert-file and --peer-key-file, and the CA with --peer-ca-file.'
            'Client: a client certificate signed by the CA of -IssuerPath, for nodes started with --client-ca-file; use it with Connect-RaftNode -CertificatePath.'
            'Existing files are kept unless -Force is given (error RaftCertificateExists). A certificate cannot outlive its CA (error RaftCertificateFailed). See docs/security.md.'
        )
        Parameters  = @{
            Kind          = 'CA, Node or Client.'
            Name          = 'The certificate''s common name (CN) and the files'' name: NAME.pem, NAME.key.pem.'
            HostName      = 'Node certificates: every host name and IP address the node is reached by.'
            NodeId        = 'Node certificates for peer TLS: the id of the node the certificate is for. Peers accept the node only as that member (docs/security.md, "Peer TLS"). Not for CA or client certificates (error RaftInvalidArgument).'
            IssuerPath    = 'Node and client certificates: the PEM certificate of the CA that signs them.'
            IssuerKeyPath = 'The CA''s private key. The default is the -IssuerPath file with .pem replaced by .key.pem, as New-RaftCertificate CA writes it.'
            Path          = 'The folder to write to (made if missing). The default is the current location.'
            ValidDays     = 'Days of validity from now. The default is 3650 for a CA and 397 for node and client certificates (or until the CA expires, if sooner).'
            NotBefore     = 'The start of validity, instead of 5 minutes ago (clamped to the CA''s).'
            NotAfter      = 'The end of validity, instead of -ValidDays from now.'
            Force         = 'Overwrites existing files.'
        }
        Inputs      = @()
        Outputs     = @{ 'RaftPS.RaftCertificateFile' = 'Kind, Name, Subject, Thumbprint, NotBefore, NotAfter, HostName, NodeId, CertificatePath, KeyPath.' }
        Examples    = @(
            @{ Title = 'A CA, two nodes and a client'
               Code = "New-RaftCertificate CA raftps-ca -Path ./pki`nNew-RaftCertificate Node node0 -HostName db1, 10.0.0.11 -NodeId 0 -IssuerPath ./pki/raftps-ca.pem -Path ./pki`nNew-RaftCertificate Node node1 -HostName db2, 10.0.0.12 -NodeId 1 -IssuerPath ./pki/raftps-ca.pem -Path ./pki`nNew-RaftCertificate Client ci -IssuerPath ./pki/raftps-ca.pem -Path ./pki"
               Remarks = 'Start node 0 with --cert-file pki/node0.pem --key-file pki/node0.key.pem --client-ca-file pki/raftps-ca.pem (client TLS) and --peer-cert-file pki/node0.pem --peer-key-file pki/node0.key.pem --peer-ca-file pki/raftps-ca.pem (peer TLS), and connect with Connect-RaftNode db1 50000 -UseTls -CaCertificatePath ./pki/raftps-ca.pem -CertificatePath ./pki/ci.pem -CertificateKeyPath ./pki/ci.key.pem.' }
        )
        Links       = @('Connect-RaftNode', 'New-RaftUserToken', 'Start-RaftCluster')
    }

    'New-RaftUserToken' = @{
        Synopsis    = 'Makes a token for a user of the nodes'' --auth-file, with a role.'
        Description = @(
            'Makes a random 256-bit token (43 characters, base64url) for a user with the role read (Get, Range, Watch, Status), write (also Set, Delete, conditional writes, leases and locks) or admin (also Suspend, Resume, membership and leadership transfer).'
            'With -AuthFile it adds the line "NAME ROLE SHA256" to that file (made if missing, readable by you only on Unix): only the token''s SHA-256 is written, never the token. A user the file lists already needs -Force (error RaftUserExists), which gives it the new token. Give the file to every node with --auth-file; the nodes read it when they start.'
            'The token is output once, as a SecureString in the Token property (pass it to Connect-RaftNode -Token); with -AsPlainText, as text in PlainTextToken instead, to store in a secret store. It cannot be recovered later.'
        )
        Parameters  = @{
            Name        = 'The user''s name, as log lines and refusals show it.'
            Role        = 'read, write or admin.'
            AuthFile    = 'The auth file to add the user''s line to.'
            Force       = 'Replaces the line of a user the file lists already.'
            AsPlainText = 'Outputs the token as text (PlainTextToken) instead of a SecureString.'
        }
        Inputs      = @()
        Outputs     = @{ 'RaftPS.RaftUserToken' = 'Name, Role, Token (SecureString) or PlainTextToken, Hash, AuthFile.' }
        Examples    = @(
            @{ Title = 'A writer for CI, then connect with its token'
               Code = "`$ci = New-RaftUserToken ci write -AuthFile ./users`nConnect-RaftNode db1 50000 -UseTls -CaCertificatePath ./pki/ca.pem -Token `$ci.Token"
               Remarks = 'Copy ./users to every node (--auth-file) and restart them; the session then writes as ci.' }
            @{ Title = 'A token to store in a secret store'
               Code = "(New-RaftUserToken deploy admin -AuthFile ./users -AsPlainText).PlainTextToken | Set-Secret raftps-deploy"
               Remarks = 'The text is shown nowhere else; Set-Secret is SecretManagement''s.' }
        )
        Links       = @('Connect-RaftNode', 'New-RaftCertificate')
    }

    'Watch-RaftValue' = @{
        Synopsis    = 'Streams the changes of a key, or of the keys a wildcard matches, as they happen.'
        Description = @(
            'Outputs one RaftChange object (Revision, Kind, Key, Value; also CreateRevision, Version, Lease) for every change of the key, or of every key the wildcard pattern matches: Kind is Put (written) or Delete (removed, expired with its lease). Changes come in revision order, each once, until -Count changes were output, -TimeoutSec passed, or Ctrl+C.'
            'It starts after the cluster''s current revision (read linearizably), so it shows what changes from now on; with -FromRevision it starts at that revision, including changes made before, as far back as the nodes keep history (by default the last 65,536 changes on each node).'
            'A watch is served by the connected node from what that node has applied: it is as current as that node. When the node dies, stops or is suspended, the watch resumes on another member from the revision after the last change output, so no change is missed or repeated. When the revisions it needs are no longer kept by any node (-FromRevision too old, or a consumer that fell far behind) it writes the error RaftWatchCompacted (InvalidOperation) and stops: read the current values again (Get-RaftValue) and watch from their revision + 1. When no node serves the watch for 30 seconds it fails with RaftNodeUnreachable.'
        )
        Parameters  = @{
            Key          = 'The key to watch, or a wildcard pattern (* ? [ ]): the keys under its literal prefix that match it. ''*'' watches every key. Tab completion offers the keys this session has used.'
            FromRevision = 'The first revision to output (1 or more). Without it, the watch starts after the current revision.'
            Count        = 'Stops after this many changes.'
            TimeoutSec   = 'Stops after this many seconds (no error). Without it, the watch runs until -Count or Ctrl+C.'
        }
        Inputs      = @{ 'System.String' = 'Keys or patterns, by value or by the property name Key (each watched in turn).' }
        Outputs     = @{ 'RaftPS.RaftChange' = 'Revision, Kind (Put, Delete), Key, Value (empty for a delete), CreateRevision, Version, Lease.' }
        Examples    = @(
            @{ Title = 'Watch a configuration key until Ctrl+C'; Code = 'Watch-RaftValue config/feature-x'; Remarks = "Revision Kind Key              Value`n-------- ---- ---              -----`n      57 Put  config/feature-x on" }
            @{ Title = 'React to every change under a prefix'; Code = "Watch-RaftValue 'jobs/*' | ForEach-Object { if (`$_.Kind -eq 'Put') { Start-Job -Name `$_.Key { ... } } }"; Remarks = 'Each change reaches the pipeline once, in order.' }
            @{ Title = 'Catch up from a known revision, then stop'; Code = 'Watch-RaftValue ''orders/*'' -FromRevision 1200 -TimeoutSec 5'; Remarks = 'Outputs every change of the orders keys from revision 1200 on, waits 5 seconds for more, then returns.' }
        )
        Links       = @('Wait-RaftValue', 'Get-RaftValue', 'Set-RaftValue')
    }

    'Wait-RaftValue' = @{
        Synopsis    = 'Waits until a key exists, has a given value, or is deleted.'
        Description = @(
            'Returns as soon as the key exists (the default), has the value given with -Value, or does not exist (-Absent), and outputs the value that satisfied the wait (nothing for -Absent). If the condition already holds it returns at once.'
            'It reads the key linearizably, then watches it from that read''s revision, so a change in between is never missed; if that history is gone it reads again. Nodes that fail are replaced by others, as for Watch-RaftValue.'
            'After -TimeoutSec it writes the non-terminating error RaftTimeout (OperationTimeout) and outputs nothing; without it, it waits until the condition holds or Ctrl+C.'
        )
        Parameters  = @{
            Key        = 'The key to wait for (no wildcards). Tab completion offers the keys this session has used.'
            Value      = 'Waits until the key has this value.'
            Absent     = 'Waits until the key does not exist (deleted, or expired with its lease).'
            TimeoutSec = 'Gives up after this many seconds with RaftTimeout. Without it, waits until the condition holds or Ctrl+C.'
        }
        Inputs      = @{ 'System.String' = 'Keys, by value or by the property name Key (waited for in turn).' }
        Outputs     = @{ 'RaftPS.RaftValue' = 'The value that satisfied the wait (none with -Absent).' }
        Examples    = @(
            @{ Title = 'Wait for another script to publish a result'; Code = '$result = Wait-RaftValue build/42/artifact -TimeoutSec 600'; Remarks = 'Returns the value once the key is written.' }
            @{ Title = 'Wait for a flag'; Code = 'Wait-RaftValue deploy/state -Value ready'; Remarks = '' }
            @{ Title = 'Wait until an expiring key is gone'; Code = "Set-RaftValue maintenance on -TtlSec 30`nWait-RaftValue maintenance -Absent"; Remarks = 'Returns about 30 seconds later, when the lease expires and the key is deleted.' }
        )
        Links       = @('Watch-RaftValue', 'Get-RaftValue')
    }

    'Lock-RaftKey' = @{
        Synopsis    = 'Acquires a named lock held across machines, waiting in line for it.'
        Description = @(
            'Waits until this session holds the lock of the given name, then outputs a RaftLock: Name, Revision (a fencing token: every later holder''s is higher, so a resource can refuse a stale holder), IsHeld, Owner (this machine and process) and Key (the key that holds it: Name/lease id). Release it with Unlock-RaftKey.'
            'The lock is etcd''s recipe: each contender writes its own key under the name, attached to its own lease; the one whose key was created first holds the lock, and each waiter watches only the key created just before its own, so waiters are served in the order they asked.'
            'The lease has a time to live of -TtlSec seconds (default 10), which the module renews in the background every third of it until Unlock-RaftKey or the end of the runspace. A script that dies, or a machine that is cut off, stops renewing: the leader lets the lease expire and deletes the key, and the next waiter gets the lock. The lock object''s IsHeld turns false when this side can no longer be sure it is held (no renewal succeeded within the time to live).'
            'After -TimeoutSec the command writes the non-terminating error RaftTimeout and removes its place in line; without it, it waits as long as it takes (Ctrl+C also gives up its place).'
        )
        Parameters  = @{
            Name       = 'The lock''s name, shared by every script that contends for it (its keys go under Name/). Tab completion offers the names this session has locked.'
            TtlSec     = 'The time to live of the lock''s lease, in seconds (1 to 86400; default 10): how long a holder that died keeps the lock.'
            TimeoutSec = 'Gives up after this many seconds with RaftTimeout. Without it, waits until the lock is acquired or Ctrl+C.'
        }
        Inputs      = @{ 'System.String' = 'Lock names, by value or by the property name Name.' }
        Outputs     = @{ 'RaftPS.RaftLock' = 'Name, Revision (fencing token), IsHeld, Owner, Key, LeaseId, TtlSec, AcquiredAt.' }
        Examples    = @(
            @{ Title = 'One of N machines runs the nightly job'
               Code = "`$lock = Lock-RaftKey jobs/nightly -TimeoutSec 5 -ErrorAction SilentlyContinue`nif (`$lock) {`n    try { ./nightly.ps1 -FencingToken `$lock.Revision } finally { `$lock | Unlock-RaftKey }`n}"
               Remarks = 'The first machine to ask runs the job; the others give up after 5 seconds. If the holder dies, its lease expires after 10 seconds and the lock is free again.' }
            @{ Title = 'Take turns on a shared resource'; Code = "`$lock = Lock-RaftKey printer`n# ... use the printer ...`nUnlock-RaftKey `$lock"; Remarks = 'Waiters are served in the order they asked.' }
        )
        Links       = @('Unlock-RaftKey', 'Wait-RaftValue')
    }

    'Unlock-RaftKey' = @{
        Synopsis    = 'Releases locks acquired with Lock-RaftKey.'
        Description = @(
            'Stops keeping the lock''s lease alive and revokes it, which deletes the lock''s key at once and wakes the next waiter. Locks bind from the pipeline.'
            'If the lease had already been lost (the lock was not held any more: another script may have held it meanwhile) it writes the non-terminating error RaftLockLost (InvalidOperation). Unlocking a lock twice does nothing.'
        )
        Parameters  = @{
            Lock = 'The locks to release, as output by Lock-RaftKey.'
        }
        Inputs      = @{ 'RaftPS.RaftLock' = 'Locks from Lock-RaftKey.' }
        Outputs     = @{ 'None' = 'The command writes no output.' }
        Examples    = @(
            @{ Title = 'Release a lock'; Code = "`$lock = Lock-RaftKey jobs/nightly`n`$lock | Unlock-RaftKey"; Remarks = '' }
        )
        Links       = @('Lock-RaftKey')
    }

    'Watch-RaftCluster' = @{
        Synopsis    = 'Shows the whole cluster in the terminal, refreshed every second.'
        Description = @(
            'Draws one row per member and redraws it every -RefreshSec (1 second by default): Id, endpoint, role, term, commit and applied index, LAG (committed entries not applied yet, by the leader''s commit index), HEARTBEAT (time since a leader''s last heartbeat or append reached the member; - on the leader), WRITES/S and READS/S (client writes and reads the member answered, between the last two frames), FSYNC P99 (of its last 1024 synced log writes) and STATUS. A member that is suspended or does not answer is drawn in red; its row stays, as unreachable or suspended, while the others go on.'
            'Each frame asks every member for its Status at once, each with a deadline of most of the refresh period, so a member that is down or cut off does not delay the frame. The members come from the members'' own replies: a member added or removed appears or goes at the next frame.'
            'It ends on Ctrl+C, on q, or after -Count frames. When the host is not an interactive console (output or input redirected, or another host), each frame is written as a plain table, without colours or cursor movement, to the information stream (as Write-Host writes), one after the other: capture it with 6>&1.'
            'For graphs and alerts, start the servers with --metrics-address and scrape /metrics (docs/observability.md).'
        )
        Parameters  = @{
            RefreshSec = 'Seconds between frames, from 0.1 to 3600. The default is 1.'
            Count      = 'Stops after this many frames. By default it runs until Ctrl+C or q.'
        }
        Inputs      = @{ 'RaftPS.RaftConnection' = 'A connection, or a node from Start-RaftCluster, to reach the cluster through.' }
        Outputs     = @{ 'None' = 'The command draws on the host (or writes plain tables to the information stream when not interactive).' }
        Examples    = @(
            @{ Title = 'Watch the connected cluster'; Code = 'Watch-RaftCluster'; Remarks = 'Press q or Ctrl+C to quit.' }
            @{ Title = 'Three frames, half a second apart, in a log'; Code = 'Watch-RaftCluster -Count 3 -RefreshSec 0.5 6>&1 | Out-File cluster.log'; Remarks = 'Plain tables, one per frame.' }
        )
        Links       = @('Get-RaftStatus', 'Get-RaftMember')
    }
}
