# Client TLS, tokens and roles through the cmdlets: a -Secure cluster (with a reader and a writer
# added to its auth file before it starts), a plain one-node cluster, and one-node clusters with
# certificates of our own (expired, naming another host, requiring client certificates).
BeforeAll {
    . "$PSScriptRoot/TestHelpers.ps1"
    # Nodes with certificates of this file's own CA: started with the server options in
    # RAFTPS_SERVER_ARGS (paths here have no spaces).
    function script:Start-TlsNode([string] $Name, [string] $CertName, [switch] $RequireClientCertificate, [string] $AuthFile) {
        $config = New-TestClusterConfig -Nodes 1
        $arguments = "--cert-file $Pki/$CertName.pem --key-file $Pki/$CertName.key.pem"
        if ($RequireClientCertificate) { $arguments += " --client-ca-file $Pki/ca.pem" }
        if ($AuthFile) { $arguments += " --auth-file $AuthFile" }
        $saved = $env:RAFTPS_SERVER_ARGS
        $env:RAFTPS_SERVER_ARGS = $arguments
        try { $node = Start-RaftCluster -ConfigPath $config.ConfigPath -DataDirectory $config.DataDirectory -NodeId 0 -TimeoutSec 60 }
        finally { $env:RAFTPS_SERVER_ARGS = $saved }
        $script:Started += $config
        $node
    }
    function script:Get-Failure([scriptblock] $Action) {
        try { & $Action; $null } catch { $_ }
    }
    $script:Started = @()
    $script:OwnerOnly = [System.IO.UnixFileMode]::UserRead -bor [System.IO.UnixFileMode]::UserWrite

    # The secure cluster: its tls/users gets a reader and a writer before -Secure adds the admin.
    $script:Secure = New-TestClusterConfig -Nodes 3
    $tls = Join-Path $Secure.DataDirectory 'tls'
    New-Item -ItemType Directory -Path $tls -Force | Out-Null
    $script:Reader = New-RaftUserToken reader read -AuthFile (Join-Path $tls 'users')
    $script:Writer = New-RaftUserToken writer write -AuthFile (Join-Path $tls 'users')
    $script:SecureNodes = @(Start-RaftCluster -ConfigPath $Secure.ConfigPath -DataDirectory $Secure.DataDirectory -Secure -TimeoutSec 60)
    $script:Tls = $tls
    function script:Connect-Secure([System.Security.SecureString] $Token, [int] $Node = 0) {
        Connect-RaftNode $SecureNodes[$Node].Address $SecureNodes[$Node].Port -NotDefault -UseTls -CaCertificatePath "$Tls/ca.pem" `
            -CertificatePath "$Tls/client.pem" -CertificateKeyPath "$Tls/client.key.pem" -Token $Token
    }

    # A PKI of this file's own: a CA, a valid node certificate, an expired one, one for another
    # host, a valid client certificate, an expired one, and a client certificate of another CA.
    $script:Pki = Join-Path $Secure.Directory 'pki'
    New-Item -ItemType Directory -Path $Pki | Out-Null
    $now = Get-Date
    New-RaftCertificate CA ca -Path $Pki -NotBefore $now.AddDays(-30) -NotAfter $now.AddDays(30) | Out-Null
    New-RaftCertificate Node good -HostName 127.0.0.1, localhost -IssuerPath "$Pki/ca.pem" -Path $Pki | Out-Null
    New-RaftCertificate Node expired -HostName 127.0.0.1 -IssuerPath "$Pki/ca.pem" -Path $Pki -NotBefore $now.AddDays(-10) -NotAfter $now.AddDays(-1) | Out-Null
    New-RaftCertificate Node elsewhere -HostName db.example.invalid -IssuerPath "$Pki/ca.pem" -Path $Pki | Out-Null
    New-RaftCertificate Client alice -IssuerPath "$Pki/ca.pem" -Path $Pki | Out-Null
    New-RaftCertificate Client old -IssuerPath "$Pki/ca.pem" -Path $Pki -NotBefore $now.AddDays(-10) -NotAfter $now.AddDays(-1) | Out-Null
    New-RaftCertificate CA otherca -Path $Pki | Out-Null
    New-RaftCertificate Client mallory -IssuerPath "$Pki/otherca.pem" -Path $Pki | Out-Null

    $script:GoodNode = Start-TlsNode good good -RequireClientCertificate
    $script:ExpiredNode = Start-TlsNode expired expired
    $script:ElsewhereNode = Start-TlsNode elsewhere elsewhere
    $plain = New-TestClusterConfig -Nodes 1
    $script:Started += $plain
    $script:PlainNode = Start-RaftCluster -ConfigPath $plain.ConfigPath -DataDirectory $plain.DataDirectory -TimeoutSec 60
}

AfterAll {
    foreach ($cluster in $Started) { Remove-TestCluster $cluster }
    Remove-TestCluster $Secure
}

Describe 'Start-RaftCluster -Secure' {
    It 'starts a TLS cluster with tokens and connects the session to it: Set-RaftValue and Get-RaftValue work' {
        $SecureNodes.Count | Should -Be 3
        Set-RaftValue secure/a 1
        (Get-RaftValue secure/a).Value | Should -Be '1'
        Get-ChildItem $Tls -Name | Should -Contain 'ca.pem'
        if (-not $IsWindows) {
            foreach ($secret in 'node.key.pem', 'client.key.pem', 'admin.token', 'users') {
                (Get-Item (Join-Path $Tls $secret)).UnixFileMode | Should -Be $OwnerOnly -Because "$secret holds a secret"
            }
        }
        Get-Content (Join-Path $Tls 'users') | Should -Not -Match ([regex]::Escape([System.Net.NetworkCredential]::new('', $Reader.Token).Password))
    }

    It 'keeps the connection''s TLS settings and token when a node object names the connection' {
        (Get-RaftStatus -Connection $SecureNodes[1]).Id | Should -Be 1
    }

    It 'turns peer TLS on: each node has a peer certificate of its own that names it' {
        foreach ($node in $SecureNodes) {
            (Get-Content $node.LogPath -Raw) | Should -Match ([regex]::Escape("Peer TLS: on (certificate CN=raftps-node-$($node.Id) naming node $($node.Id)"))
            $peer = [System.Security.Cryptography.X509Certificates.X509Certificate2]::CreateFromPem((Get-Content (Join-Path $Tls "peer-$($node.Id).pem") -Raw))
            ($peer.Extensions | Where-Object { $_.Oid.Value -eq '2.5.29.17' }).Format($false) | Should -Match "raftps://node/$($node.Id)"
            if (-not $IsWindows) { (Get-Item (Join-Path $Tls "peer-$($node.Id).key.pem")).UnixFileMode | Should -Be $OwnerOnly }
        }
        (Get-Content $SecureNodes[0].LogPath -Raw) | Should -Not -Match 'Refused a peer'
    }

    It 'Add-RaftNode -Start starts the new node with the cluster''s client and peer TLS options: it joins and becomes a voter' {
        $port = Get-FreePort; while ($port -in $Secure.Ports) { $port = Get-FreePort }
        $added = Add-RaftNode -Id 3 -Port $port -Start -ConfigPath $Secure.ConfigPath -DataDirectory $Secure.DataDirectory -CatchUpTimeoutSec 60 -TimeoutSec 20 -Confirm:$false
        try {
            $added.Role | Should -Be 'Voter'
            $log = @(Get-ChildItem (Join-Path $Secure.DataDirectory 'node-3') -Filter '*.log')[0].FullName
            (Get-Content $log -Raw) | Should -Match ([regex]::Escape('Peer TLS: on (certificate CN=raftps-node-3 naming node 3'))
            (Get-Content $log -Raw) | Should -Match ([regex]::Escape('Client TLS: on'))
            # It asked a member for the members over peer TLS (with its peer certificate), as etcd does, not as a client.
            (Get-Content $log -Raw) | Should -Match 'Joining cluster [0-9a-f]{16} of .* \(asked node \d+ at 127\.0\.0\.1:\d+ over peer TLS\)'
            $c = Connect-Secure $Writer.Token
            Set-RaftValue secure/added 3 -Connection $c
            (Get-RaftValue secure/added -Connection (Connect-RaftNode 127.0.0.1 $port -NotDefault -UseTls -CaCertificatePath "$Tls/ca.pem" `
                -CertificatePath "$Tls/client.pem" -CertificateKeyPath "$Tls/client.key.pem" -Token $Reader.Token)).Value | Should -Be '3'
        }
        finally {
            Remove-RaftNode -Id 3 -Confirm:$false -TimeoutSec 20 -ErrorAction SilentlyContinue
        }
        (Get-RaftMember).Id | Should -Not -Contain 3
    }

    It 'shares one channel among connections made with the same TLS settings and token, and not with others' {
        $cache = [RaftPS.Cmdlets.ConnectRaftNodeCommand].Assembly.GetType('RaftPS.Client.ChannelCache', $true)
        $count = { $cache.GetProperty('Count', [System.Reflection.BindingFlags]'NonPublic, Static').GetValue($null) }
        $sameToken = [System.Net.NetworkCredential]::new('', [System.Net.NetworkCredential]::new('', $Writer.Token).Password).SecurePassword
        (Get-RaftValue secure/a -Connection (Connect-Secure $Writer.Token 2)).Value | Should -Be 1
        $channels = & $count
        foreach ($i in 1..5) { (Get-RaftValue secure/a -Connection (Connect-Secure $sameToken 2)).Value | Should -Be 1 }
        & $count | Should -Be $channels -Because 'the same settings and token (another SecureString) reuse the channel'
        (Get-RaftValue secure/a -Connection (Connect-Secure $Reader.Token 2)).Value | Should -Be 1
        & $count | Should -Be ($channels + 1) -Because 'another token is another channel'
    }
}

Describe 'Client TLS' {
    It 'a plain-text client against a TLS node gets RaftTlsRequired, saying to use -UseTls' {
        $plain = Connect-RaftNode $SecureNodes[0].Address $SecureNodes[0].Port -NotDefault
        $failure = Get-Failure { Get-RaftValue secure/a -Connection $plain -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsRequired,RaftPS.Cmdlets.GetRaftValueCommand'
        $failure.CategoryInfo.Category | Should -Be 'SecurityError'
        $failure.Exception.Message | Should -Match ([regex]::Escape("the node at $($SecureNodes[0].Address):$($SecureNodes[0].Port) speaks TLS; connect with -UseTls"))
    }

    It 'a TLS client against a plain-text node gets RaftTlsFailed, saying the node does not speak TLS' {
        $tlsClient = Connect-RaftNode $PlainNode.Address $PlainNode.Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem"
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $failure = Get-Failure { Get-RaftLeader -Connection $tlsClient -TimeoutSec 20 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsFailed,RaftPS.Cmdlets.GetRaftLeaderCommand'
        $failure.Exception.Message | Should -Match 'does not speak TLS .*connect without -UseTls'
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 10 -Because 'a TLS mismatch is not retried until the timeout'
    }

    It 'refuses a node certificate of another CA' {
        $c = Connect-RaftNode $SecureNodes[0].Address $SecureNodes[0].Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem" `
            -CertificatePath "$Tls/client.pem" -CertificateKeyPath "$Tls/client.key.pem" -Token $Reader.Token
        $failure = Get-Failure { Get-RaftValue secure/a -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsFailed,RaftPS.Cmdlets.GetRaftValueCommand'
        $failure.Exception.Message | Should -Match 'is not trusted by -CaCertificatePath \(CN=ca\)'
    }

    It 'trusts every CA of a -CaCertificatePath bundle (a CA rolled over is listed with its successor), and refuses a file without a certificate' {
        $bundle = Join-Path $TestDrive 'bundle.pem'
        Set-Content $bundle (Get-Content "$Pki/ca.pem", "$Tls/ca.pem")
        $c = Connect-RaftNode $SecureNodes[0].Address $SecureNodes[0].Port -NotDefault -UseTls -CaCertificatePath $bundle `
            -CertificatePath "$Tls/client.pem" -CertificateKeyPath "$Tls/client.key.pem" -Token $Reader.Token
        (Get-RaftValue secure/a -Connection $c -TimeoutSec 10).Value | Should -Be 1
        $empty = Join-Path $TestDrive 'empty.pem'
        Set-Content $empty 'no certificate here'
        $failure = Get-Failure { Connect-RaftNode $SecureNodes[0].Address $SecureNodes[0].Port -NotDefault -UseTls -CaCertificatePath $empty }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftCertificateUnreadable,RaftPS.Cmdlets.ConnectRaftNodeCommand'
    }

    It 'refuses a node certificate not trusted by the machine when no CA is given' {
        $c = Connect-RaftNode $GoodNode.Address $GoodNode.Port -NotDefault -UseTls -CertificatePath "$Pki/alice.pem"
        $failure = Get-Failure { Get-RaftLeader -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsFailed,RaftPS.Cmdlets.GetRaftLeaderCommand'
        $failure.Exception.Message | Should -Match 'not trusted by this machine.*-CaCertificatePath'
    }

    It 'refuses an expired node certificate' {
        $c = Connect-RaftNode $ExpiredNode.Address $ExpiredNode.Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem"
        $failure = Get-Failure { Get-RaftLeader -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsFailed,RaftPS.Cmdlets.GetRaftLeaderCommand'
        $failure.Exception.Message | Should -Match 'NotTimeValid'
    }

    It 'refuses a node certificate that names another host' {
        $c = Connect-RaftNode $ElsewhereNode.Address $ElsewhereNode.Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem"
        $failure = Get-Failure { Get-RaftLeader -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsFailed,RaftPS.Cmdlets.GetRaftLeaderCommand'
        $failure.Exception.Message | Should -Match 'does not name the host called'
    }

    It 'serves a client certificate of its CA when client certificates are required' {
        $c = Connect-RaftNode $GoodNode.Address $GoodNode.Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem" -CertificatePath "$Pki/alice.pem"
        Set-RaftValue k v -Connection $c
        (Get-RaftValue k -Connection $c).Value | Should -Be 'v'
    }

    It 'refuses <Name> when client certificates are required' -ForEach @(
        @{ Name = 'no client certificate'; Certificate = $null }
        @{ Name = 'an expired client certificate'; Certificate = 'old' }
        @{ Name = 'a client certificate of another CA'; Certificate = 'mallory' }) {
        $parameters = @{ NotDefault = $true; UseTls = $true; CaCertificatePath = "$Pki/ca.pem" }
        if ($Certificate) { $parameters.CertificatePath = "$Pki/$Certificate.pem" }
        $c = Connect-RaftNode $GoodNode.Address $GoodNode.Port @parameters
        $failure = Get-Failure { Get-RaftLeader -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftTlsFailed,RaftPS.Cmdlets.GetRaftLeaderCommand'
        $failure.Exception.Message | Should -Match 'requires a client certificate issued by its CA'
    }
}

Describe 'Tokens and roles' {
    It 'a call without a token is RaftUnauthenticated (AuthenticationError)' {
        $c = Connect-RaftNode $SecureNodes[0].Address $SecureNodes[0].Port -NotDefault -UseTls -CaCertificatePath "$Tls/ca.pem" `
            -CertificatePath "$Tls/client.pem" -CertificateKeyPath "$Tls/client.key.pem"
        $failure = Get-Failure { Get-RaftValue secure/a -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftUnauthenticated,RaftPS.Cmdlets.GetRaftValueCommand'
        $failure.CategoryInfo.Category | Should -Be 'AuthenticationError'
    }

    It 'a call with an unknown token is RaftUnauthenticated' {
        $c = Connect-Secure (ConvertTo-SecureString 'not-a-token-the-node-knows' -AsPlainText -Force)
        (Get-Failure { Get-RaftValue secure/a -Connection $c -TimeoutSec 5 }).FullyQualifiedErrorId | Should -Be 'RaftUnauthenticated,RaftPS.Cmdlets.GetRaftValueCommand'
    }

    It 'the read role reads but cannot write: RaftPermissionDenied (PermissionDenied) naming the role needed' {
        $c = Connect-Secure $Reader.Token
        (Get-RaftValue secure/a -Connection $c).Value | Should -Be '1'
        $failure = Get-Failure { Set-RaftValue secure/a 2 -Connection $c -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftPermissionDenied,RaftPS.Cmdlets.SetRaftValueCommand'
        $failure.CategoryInfo.Category | Should -Be 'PermissionDenied'
        $failure.Exception.Message | Should -Match "Set needs the write role; user 'reader' has read"
        (Get-RaftValue secure/a).Value | Should -Be '1'
    }

    It 'the write role writes, through any node, but cannot suspend a node or add a member' {
        foreach ($node in 0..2) {
            $c = Connect-Secure $Writer.Token -Node $node
            Set-RaftValue "secure/w$node" $node -Connection $c
            (Get-RaftValue "secure/w$node" -Connection $c).Value | Should -Be "$node"
        }
        $failure = Get-Failure { Suspend-RaftNode 1 -Connection $c -Confirm:$false }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftPermissionDenied,RaftPS.Cmdlets.SuspendRaftNodeCommand'
        $failure.Exception.Message | Should -Match 'Suspend needs the admin role'
        $failure = Get-Failure { Add-RaftNode -Id 7 -Address 127.0.0.1 -Port 9 -AsLearner -Connection $c -Confirm:$false -TimeoutSec 5 }
        $failure.FullyQualifiedErrorId | Should -Be 'RaftPermissionDenied,RaftPS.Cmdlets.AddRaftNodeCommand'
        (Get-RaftMember).Id | Should -Not -Contain 7
    }

    It 'the admin role adds and removes a member and suspends a node' {
        $admin = Get-Content (Join-Path $Tls 'admin.token') -Raw
        $credential = [pscredential]::new('admin', (ConvertTo-SecureString $admin.Trim() -AsPlainText -Force))
        $c = Connect-RaftNode $SecureNodes[0].Address $SecureNodes[0].Port -NotDefault -UseTls -CaCertificatePath "$Tls/ca.pem" `
            -CertificatePath "$Tls/client.pem" -CertificateKeyPath "$Tls/client.key.pem" -Credential $credential
        Add-RaftNode -Id 7 -Address 127.0.0.1 -Port 9 -AsLearner -Connection $c -Confirm:$false -TimeoutSec 20 -CatchUpTimeoutSec 1 -ErrorAction SilentlyContinue | Out-Null
        (Get-RaftMember -Connection $c).Id | Should -Contain 7
        Remove-RaftNode -Id 7 -Connection $c -Confirm:$false -TimeoutSec 20
        (Get-RaftMember -Connection $c).Id | Should -Not -Contain 7
        Suspend-RaftNode 0.2 -Connection $c -Confirm:$false
    }

    It 'a client certificate that names a certificate user of the auth file gets that user''s role, without a token' {
        $users = Join-Path $Pki 'cert-users'
        Set-Content $users 'alice write certificate'
        New-RaftCertificate Client carol -IssuerPath "$Pki/ca.pem" -Path $Pki | Out-Null
        $node = Start-TlsNode certusers good -RequireClientCertificate -AuthFile $users
        $alice = Connect-RaftNode $node.Address $node.Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem" `
            -CertificatePath "$Pki/alice.pem" -CertificateKeyPath "$Pki/alice.key.pem"
        Set-RaftValue cert/a 1 -Connection $alice
        (Get-RaftValue cert/a -Connection $alice).Value | Should -Be '1'
        $carol = Connect-RaftNode $node.Address $node.Port -NotDefault -UseTls -CaCertificatePath "$Pki/ca.pem" `
            -CertificatePath "$Pki/carol.pem" -CertificateKeyPath "$Pki/carol.key.pem"
        (Get-Failure { Get-RaftValue cert/a -Connection $carol -TimeoutSec 5 }).FullyQualifiedErrorId | Should -Be 'RaftUnauthenticated,RaftPS.Cmdlets.GetRaftValueCommand'
    }

    It 'a certificate user writes through a follower: the follower forwards over peer TLS, naming the user' {
        New-RaftCertificate Client dave -IssuerPath "$Tls/ca.pem" -Path $Tls | Out-Null
        Add-Content (Join-Path $Tls 'users') 'dave write certificate'
        $leader = (Get-RaftLeader).Id
        $follower = @(0..2 | Where-Object { $_ -ne $leader })[0]
        $c = Connect-RaftNode $SecureNodes[$follower].Address $SecureNodes[$follower].Port -NotDefault -UseTls -CaCertificatePath "$Tls/ca.pem" `
            -CertificatePath "$Tls/dave.pem" -CertificateKeyPath "$Tls/dave.key.pem"
        Wait-Until { try { Set-RaftValue cert/dave 1 -Connection $c -TimeoutSec 5; $true } catch { $false } } -TimeoutSec 20 `
            -Because 'the nodes reread their auth file and the follower forwards the write of a certificate user'
        (Get-RaftValue cert/dave -Connection $c).Value | Should -Be '1'
    }

    It 'a user added to the auth file while the nodes run is served on every node without a restart' {
        $late = New-RaftUserToken late read -AuthFile (Join-Path $Tls 'users')
        foreach ($node in 0..2) {
            $c = Connect-Secure $late.Token -Node $node
            Wait-Until { try { (Get-RaftValue secure/a -Connection $c -TimeoutSec 5).Value -eq '1' } catch { $false } } -TimeoutSec 20 `
                -Because "node $node rereads its auth file when it changes"
        }
        (Get-Failure { Set-RaftValue secure/a 3 -Connection $c -TimeoutSec 5 }).FullyQualifiedErrorId | Should -Be 'RaftPermissionDenied,RaftPS.Cmdlets.SetRaftValueCommand'
    }
}

Describe 'New-RaftCertificate and New-RaftUserToken' {
    It 'writes a node certificate naming its hosts, its key readable by its owner only' {
        $cert = New-RaftCertificate Node n2 -HostName 10.0.0.2, n2.example -IssuerPath "$Pki/ca.pem" -Path $Pki
        $cert.Kind | Should -Be 'Node'
        $cert.Subject | Should -Be 'CN=n2'
        $x509 = [System.Security.Cryptography.X509Certificates.X509Certificate2]::CreateFromPem((Get-Content $cert.CertificatePath -Raw))
        $san = $x509.Extensions | Where-Object { $_.Oid.Value -eq '2.5.29.17' }
        $san.Format($false) | Should -Match '10\.0\.0\.2'
        $san.Format($false) | Should -Match 'n2\.example'
        $x509.Issuer | Should -Be 'CN=ca'
        if (-not $IsWindows) { (Get-Item $cert.KeyPath).UnixFileMode | Should -Be $OwnerOnly }
        { New-RaftCertificate Node n2 -HostName x -IssuerPath "$Pki/ca.pem" -Path $Pki } | Should -Throw -ErrorId 'RaftCertificateExists,RaftPS.Cmdlets.NewRaftCertificateCommand'
    }

    It 'names the node of a peer TLS certificate with -NodeId (raftps://node/ID); only node certificates name one' {
        $cert = New-RaftCertificate Node n5 -HostName 10.0.0.5 -NodeId 5 -IssuerPath "$Pki/ca.pem" -Path $Pki
        $cert.NodeId | Should -Be 5
        $x509 = [System.Security.Cryptography.X509Certificates.X509Certificate2]::CreateFromPem((Get-Content $cert.CertificatePath -Raw))
        ($x509.Extensions | Where-Object { $_.Oid.Value -eq '2.5.29.17' }).Format($false) | Should -Match 'raftps://node/5'
        { New-RaftCertificate Client c5 -NodeId 5 -IssuerPath "$Pki/ca.pem" -Path $Pki } | Should -Throw -ErrorId 'RaftInvalidArgument,RaftPS.Cmdlets.NewRaftCertificateCommand'
    }

    It 'writes only the hash of a token; the same name again needs -Force' {
        $file = Join-Path $Pki 'users'
        $t = New-RaftUserToken ci write -AuthFile $file -AsPlainText
        $t.PlainTextToken.Length | Should -Be 43
        $t.Token | Should -BeNullOrEmpty
        $sha = [Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes($t.PlainTextToken))).ToLowerInvariant()
        Get-Content $file | Should -Contain "ci write $sha"
        (Get-Content $file -Raw) | Should -Not -Match ([regex]::Escape($t.PlainTextToken))
        { New-RaftUserToken ci read -AuthFile $file } | Should -Throw -ErrorId 'RaftUserExists,RaftPS.Cmdlets.NewRaftUserTokenCommand'
        (New-RaftUserToken ci read -AuthFile $file -Force).Role | Should -Be 'read'
        @(Get-Content $file | Where-Object { $_ -like 'ci *' }).Count | Should -Be 1
    }
}
