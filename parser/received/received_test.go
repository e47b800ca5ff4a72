package received

import (
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
)

// Values are quoted from Received fields in the shared corpus (unfolded), a few trimmed of
// their id and for clauses. Expected fields were written by hand from the field text; dates
// were converted to UTC by hand (for example 06:34:43 -0500 is 11:34:43Z, and 23:45:10 +0900
// is 14:45:10Z the same day).
var shapes = []struct {
	name, in string
	want     api.Received
}{
	{"postfix",
		"from mail-iw0-f179.google.com (mail-iw0-f179.google.com [209.85.214.179]) by mxa.example.com (Postfix) with ESMTP id 4730DF01123 for <bob@example.net>; Wed, 17 Nov 2010 20:02:42 +0000 (UTC)",
		api.Received{From: "mail-iw0-f179.google.com", By: "mxa.example.com", With: "ESMTP", IP: "209.85.214.179", Date: "2010-11-17T20:02:42Z"}},
	{"postfix unknown client, address-literal helo",
		"from [192.168.1.177] (unknown [83.149.42.178]) by core1.definbox.com (Postfix) with ESMTPA id 1E0A92D12E3 for <user@aol.com>; Fri, 29 Jul 2011 08:08:53 +0000 (UTC)",
		api.Received{From: "[192.168.1.177]", By: "core1.definbox.com", With: "ESMTPA", IP: "83.149.42.178", Date: "2011-07-29T08:08:53Z"}},
	{"postfix IPv6",
		"from mail-qt1-x849.google.com (mail-qt1-x849.google.com [IPv6:2607:f8b0:4864:20::849]) by koriander.ueber.net (Postfix) with ESMTPS id 177EBDEB0B for <postmaster@ueber.net>; Wed, 13 Oct 2021 14:30:07 +0200 (CEST)",
		api.Received{From: "mail-qt1-x849.google.com", By: "koriander.ueber.net", With: "ESMTPS", IP: "2607:f8b0:4864:20::849", Date: "2021-10-13T12:30:07Z"}},
	{"postfix IPv6 loopback",
		"from ietfa.amsl.com (localhost [IPv6:::1]) by ietfa.amsl.com (Postfix) with ESMTP id 8569D12025D; Tue, 7 May 2019 14:01:16 -0700 (PDT)",
		api.Received{From: "ietfa.amsl.com", By: "ietfa.amsl.com", With: "ESMTP", IP: "::1", Date: "2019-05-07T21:01:16Z"}},
	{"sendmail",
		"from aquila.el-example.org (localhost [127.0.0.1]) by aquila.el-example.org (8.14.2/8.14.2) with ESMTP id o8M7UrfD018673 for <e-f5f4@app.ar-example.com>; Wed, 22 Sep 2010 02:30:54 -0500 (CDT) (envelope-from production@aquila.el-example.org)",
		api.Received{From: "aquila.el-example.org", By: "aquila.el-example.org", With: "ESMTP", IP: "127.0.0.1", Date: "2010-09-22T07:30:54Z"}},
	{"sendmail ident",
		"from webmail.uwohali.com (nobody@localhost [127.0.0.1]) by webmail.uwohali.com (8.8.7/8.8.7) with SMTP id GAA10264 for <eryq@zeegee.com>; Tue, 25 Apr 2000 06:34:43 -0500",
		api.Received{From: "webmail.uwohali.com", By: "webmail.uwohali.com", With: "SMTP", IP: "127.0.0.1", Date: "2000-04-25T11:34:43Z"}},
	{"sendmail local submission",
		"(from julliard@localhost) by mail.wine.dyndns.org (8.12.3/8.12.3/Debian -4) id g8527Zmq029780; Wed, 4 Sep 2002 19:07:35 -0700",
		api.Received{By: "mail.wine.dyndns.org", Date: "2002-09-05T02:07:35Z"}},
	{"exim",
		"from [205.139.141.226] (helo=webmail.uwohali.com ident=root) by virtual.mrf.mail.rcn.net with esmtp (Exim 2.12 #3) id 12k3VX-00012G-00 for eryq@zeegee.com; Tue, 25 Apr 2000 07:27:59 -0400",
		api.Received{From: "[205.139.141.226]", By: "virtual.mrf.mail.rcn.net", With: "esmtp", IP: "205.139.141.226", Date: "2000-04-25T11:27:59Z"}},
	{"exim with port",
		"from smtp11.ggg.com ([66.202.209.213]:59716) by mx34.test.it with esmtp (envelope-from <noreply@ggg.com>) id 1dWJDl-00035d-BU for mvk2008_64@test.it; Sat, 15 Jul 2017 12:18:41 +0300",
		api.Received{From: "smtp11.ggg.com", By: "mx34.test.it", With: "esmtp", IP: "66.202.209.213", Date: "2017-07-15T09:18:41Z"}},
	{"exim local",
		"from mail by e1.example.org with local (Exim 4.72) id 1P1ceB-000FL1-4q for shironeko@example.jp; Fri, 01 Oct 2010 19:15:23 +0900",
		api.Received{From: "mail", By: "e1.example.org", With: "local", Date: "2010-10-01T10:15:23Z"}},
	{"qmail invoked",
		"(qmail 18614 invoked from network); 8 Mar 2017 04:00:31 -0000",
		api.Received{Date: "2017-03-08T04:00:31Z"}},
	{"qmail unknown with HELO",
		"from unknown (HELO mx2.example.jp) (192.0.2.88) by 192.0.2.19 with SMTP; 29 Apr 2010 23:45:10 +0900",
		api.Received{From: "mx2.example.jp", By: "192.0.2.19", With: "SMTP", IP: "192.0.2.88", Date: "2010-04-29T14:45:10Z"}},
	{"qmail rdns and HELO",
		"from c.netpar.com.br (HELO apus.netpar.com.br) (189.125.104.100) by smtp.customers.net with SMTP; 22 Aug 2016 09:22:13 -0000",
		api.Received{From: "c.netpar.com.br", By: "smtp.customers.net", With: "SMTP", IP: "189.125.104.100", Date: "2016-08-22T09:22:13Z"}},
	{"qmail empty HELO",
		"from unknown (HELO ) (185.137.84.106) by smtp.customers.net with SMTP; 24 May 2016 12:30:11 -0000",
		api.Received{From: "unknown", By: "smtp.customers.net", With: "SMTP", IP: "185.137.84.106", Date: "2016-05-24T12:30:11Z"}},
	{"microsoft 365 hop",
		"from AS8PR02MB6934.eurprd02.prod.outlook.com (2603:10a6:20b:2e5::10) by AM6PR0202MB3477.eurprd02.prod.outlook.com (2603:10a6:209:20::17) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4755.14; Sun, 5 Dec 2021 13:12:03 +0000",
		api.Received{From: "AS8PR02MB6934.eurprd02.prod.outlook.com", By: "AM6PR0202MB3477.eurprd02.prod.outlook.com", With: "Microsoft SMTP Server", IP: "2603:10a6:20b:2e5::10", Date: "2021-12-05T13:12:03Z"}},
	{"microsoft 365 mapi",
		"from AS8PR02MB6934.eurprd02.prod.outlook.com ([fe80::f89e:5f1e:a131:231b]) by AS8PR02MB6934.eurprd02.prod.outlook.com ([fe80::f89e:5f1e:a131:231b%6]) with mapi id 15.20.4755.019; Sun, 5 Dec 2021 13:12:03 +0000",
		api.Received{From: "AS8PR02MB6934.eurprd02.prod.outlook.com", By: "AS8PR02MB6934.eurprd02.prod.outlook.com", With: "mapi", IP: "fe80::f89e:5f1e:a131:231b", Date: "2021-12-05T13:12:03Z"}},
	{"microsoft 365 frontend, IP as helo",
		"from 104.47.53.36 (13.64.196.54) by BL2NAM06FT015.mail.protection.outlook.com (10.152.107.16) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.6105.0 via Frontend Transport; Fri, 3 Feb 2023 05:09:22 +0000",
		api.Received{From: "104.47.53.36", By: "BL2NAM06FT015.mail.protection.outlook.com", With: "Microsoft SMTP Server", IP: "13.64.196.54", Date: "2023-02-03T05:09:22Z"}},
	{"microsoft 365 HTTPS",
		"from CY4PR2001MB1029.namprd20.prod.outlook.com (2603:10b6:4:9d::48) by DM5PR2001MB1033.namprd20.prod.outlook.com with HTTPS via DM5PR1501CA0035.NAMPRD15.PROD.OUTLOOK.COM; Wed, 18 Jul 2018 17:38:15 +0000",
		api.Received{From: "CY4PR2001MB1029.namprd20.prod.outlook.com", By: "DM5PR2001MB1033.namprd20.prod.outlook.com", With: "HTTPS", IP: "2603:10b6:4:9d::48", Date: "2018-07-18T17:38:15Z"}},
	{"exchange on premises",
		"from apiron13.triara.com (200.57.129.98) by APCNHUB11.correo.local (172.18.31.175) with Microsoft SMTP Server id 14.3.498.0; Mon, 10 Oct 2022 15:11:35 -0500",
		api.Received{From: "apiron13.triara.com", By: "APCNHUB11.correo.local", With: "Microsoft SMTP Server", IP: "200.57.129.98", Date: "2022-10-10T20:11:35Z"}},
	{"exchange 2000",
		"from corp.enron.com ([192.168.110.226]) by nahou-mscnx06p.corp.enron.com with Microsoft SMTPSVC(5.0.2195.2966); Wed, 5 Dec 2001 02:00:19 -0600",
		api.Received{From: "corp.enron.com", By: "nahou-mscnx06p.corp.enron.com", With: "Microsoft SMTPSVC", IP: "192.168.110.226", Date: "2001-12-05T08:00:19Z"}},
	{"gmail internal",
		"by 2002:a05:651c:1614:b0:293:27a9:ef34 with SMTP id f20-20020a05651c161400b0029327a9ef34mr2834317ljq.0; Thu, 26 Feb 2023 18:30:56 -0800 (PST)",
		api.Received{By: "2002:a05:651c:1614:b0:293:27a9:ef34", With: "SMTP", Date: "2023-02-27T02:30:56Z"}},
	{"gmail HTTP",
		"by 10.36.5.10 with HTTP; Sun, 8 May 2005 12:09:11 -0700 (PDT)",
		api.Received{By: "10.36.5.10", With: "HTTP", Date: "2005-05-08T19:09:11Z"}},
	{"gmail mx",
		"from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41]) by mx.google.com with SMTPS id 11-20020aa7914b000000b0052ab192de4fsor8543241pfi.101.2022.07.26.20.42.35 for <recipient2@example.com> (Google Transport Security); Tue, 26 Jul 2022 20:42:35 -0700 (PDT)",
		api.Received{From: "mail-sor-f41.google.com", By: "mx.google.com", With: "SMTPS", IP: "209.85.220.41", Date: "2022-07-27T03:42:35Z"}},
	{"gmail submission",
		"from [192.168.1.2] ([8.8.8.8]) by smtp.gmail.com with ESMTPSA id oj16-20020a17090b4d9000b001f291c9d3bdsm387578pjb.48.2022.07.26.20.42.32 for <recipient2@example.com> (version=TLS1_3 cipher=TLS_AES_128_GCM_SHA256 bits=128/128); Tue, 26 Jul 2022 20:42:33 -0700 (PDT)",
		api.Received{From: "[192.168.1.2]", By: "smtp.gmail.com", With: "ESMTPSA", IP: "8.8.8.8", Date: "2022-07-27T03:42:33Z"}},
	{"ironport",
		"from vps-051e4cda.vps.ovh.net ([152.228.133.10]) by apiron13.triara.com with ESMTP/TLS/ECDHE-RSA-AES128-GCM-SHA256; 10 Oct 2022 15:11:34 -0500",
		api.Received{From: "vps-051e4cda.vps.ovh.net", By: "apiron13.triara.com", With: "ESMTP", IP: "152.228.133.10", Date: "2022-10-10T20:11:34Z"}},
	{"proofpoint",
		"from e06smtp10.uk.ibm.com (e06smtp10.uk.ibm.com [195.75.94.106]) by mx0b-001b2d01.pphosted.com with ESMTP id 292hw54kbu-1 (version=TLSv1.2 cipher=AES256-SHA bits=256 verify=NOT) for <lina.vailati@dududu.it>; Wed, 08 Mar 2017 11:46:27 -0500",
		api.Received{From: "e06smtp10.uk.ibm.com", By: "mx0b-001b2d01.pphosted.com", With: "ESMTP", IP: "195.75.94.106", Date: "2017-03-08T16:46:27Z"}},
	{"proofpoint essentials, comments before by",
		"from hmail.jitbit.com (hmail.jitbit.com [52.4.102.94]) (using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)) (No client certificate requested) by mx1-eu1.ppe-hosted.com (PPE Hosted ESMTP Server) with ESMTPS id F1BA29C0092 for <helpdesk@netecgc.com>; Wed, 26 Jan 2022 09:06:48 +0000 (UTC)",
		api.Received{From: "hmail.jitbit.com", By: "mx1-eu1.ppe-hosted.com", With: "ESMTPS", IP: "52.4.102.94", Date: "2022-01-26T09:06:48Z"}},
	{"mimecast",
		"from mail-lf0-f41.google.com (mail-lf0-f41.google.com [209.85.215.41]) (Using TLS) by us-smtp-1.mimecast.com with ESMTP id us-mta-17-aVxHWkMLNi6pcOGz282riQ-1; Mon, 26 Feb 2018 16:07:18 -0500",
		api.Received{From: "mail-lf0-f41.google.com", By: "us-smtp-1.mimecast.com", With: "ESMTP", IP: "209.85.215.41", Date: "2018-02-26T21:07:18Z"}},
	{"1991, two-digit year, EST",
		"from greenbush.bellcore.com by thumper.bellcore.com (4.1/4.7) id <AA28328> for ietf-822@dimacs.rutgers.edu; Tue, 24 Dec 91 08:14:30 EST",
		api.Received{From: "greenbush.bellcore.com", By: "thumper.bellcore.com", Date: "1991-12-24T13:14:30Z"}},
	{"smail, by before from, MET without seconds",
		"by methan.chemie.fu-berlin.de (Smail3.1.29.1) from franz.ww.TU-Berlin.DE (130.149.200.51) with smtp id <m0vbwzX-0009vcC>; Mon, 23 Dec 96 00:07 MET",
		api.Received{From: "franz.ww.TU-Berlin.DE", By: "methan.chemie.fu-berlin.de", With: "smtp", IP: "130.149.200.51", Date: "1996-12-22T23:07:00Z"}},
	{"PST name, semicolon in an angle address",
		`from cookie.untd.com by cookie.untd.com for <"IdYffSwumi6wA8UbKGMM+P8l;G9LgcPawmOQAcxZ/RpMO5f+lY1OlrG==">; Sat, 14 Feb 2004 11:53:49 PST`,
		api.Received{From: "cookie.untd.com", By: "cookie.untd.com", Date: "2004-02-14T19:53:49Z"}},
	{"no semicolon",
		"from nijo.example.jp (unknown [10.60.208.17]) by None (SG) with ESMTP id 5090f373.15fb.5e72c3 Wed, 31 Oct 2012 04:46:27 -0500 (CST)",
		api.Received{From: "nijo.example.jp", By: "None", With: "ESMTP", IP: "10.60.208.17", Date: "2012-10-31T09:46:27Z"}},
	{"comma for a day name",
		"from [85.0.0.121] by mail.zzzzzz.com; , 23 Dec 2007 12:57:34 -0800",
		api.Received{From: "[85.0.0.121]", By: "mail.zzzzzz.com", IP: "85.0.0.121", Date: "2007-12-23T20:57:34Z"}},
	{"comment after the semicolon",
		"from smtp.notes.na.collabserv.com (192.155.248.67) by d50lp03.ny.us.ibm.com (158.87.18.22) with IBM ESMTP SMTP Gateway: Authorized Use Only! Violators will be prosecuted; (version=TLSv1/SSLv3 cipher=AES128-GCM-SHA256 bits=128/128) Wed, 8 Mar 2017 11:46:17 -0500",
		api.Received{From: "smtp.notes.na.collabserv.com", By: "d50lp03.ny.us.ibm.com", With: "IBM ESMTP SMTP", IP: "192.155.248.67", Date: "2017-03-08T16:46:17Z"}},
	{"nested comment, cut short",
		"from firstgate.proxmox.com (firstgate.proxmox.com [212.224.123.68] (AS44066 firstcolo GmbH, DE))",
		api.Received{From: "firstgate.proxmox.com", IP: "212.224.123.68"}},
	{"redacted literal",
		"from xxxx.xxxx (ec2-34-198-5-89.compute-1.amazonaws.com [x.x.x.x]) by email-smtp.amazonaws.com with SMTP (SimpleEmailService-d-11MVXUWA9) id aRHDoBiW1yM0CRxRhdPS; Tue, 16 Feb 2021 00:57:06 +0000 (UTC)",
		api.Received{From: "xxxx.xxxx", By: "email-smtp.amazonaws.com", With: "SMTP", Date: "2021-02-16T00:57:06Z"}},
	{"no from word: reverse DNS name",
		"from (smtp-gw1.example.ne.jp [192.0.2.90]) by smtp6.example.ne.jp with smtp id 0000000000000; Wed, 29 Apr 2010 23:45:10 +0900",
		api.Received{From: "smtp-gw1.example.ne.jp", By: "smtp6.example.ne.jp", With: "smtp", IP: "192.0.2.90", Date: "2010-04-29T14:45:10Z"}},
	{"literal after a non-address literal",
		"from 10.13.46.65 ([UNAVAILABLE]. [82.117.219.130]) (using TLSv1.2 with cipher DHE-RSA-AES256-GCM-SHA384) by 0.0.0.0:587 (trex/5.7.12); Tue, 17 Jul 2018 08:13:25 -0400",
		api.Received{From: "10.13.46.65", By: "0.0.0.0:587", IP: "82.117.219.130", Date: "2018-07-17T12:13:25Z"}},
	{"mox, via before with, no day name or seconds",
		"from bn6pr00cu002-vft-obe.outbound.protection.outlook.com (mail-eastus2azlp170110002.outbound.protection.outlook.com [IPv6:2a01:111:f403:c110::2]) by komijn.test.xmox.nl ([IPv6:2a02:2770::21a:4aff:feba:bde0]) via tcp with ESMTPS id ET5aGZkrsqiMyI7lRqJILg (TLS1.2 TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) for <tlsrpt@test.xmox.nl>; 03 Feb 2023 06:09 +0100",
		api.Received{From: "bn6pr00cu002-vft-obe.outbound.protection.outlook.com", By: "komijn.test.xmox.nl", With: "ESMTPS", IP: "2a01:111:f403:c110::2", Date: "2023-02-03T05:09:00Z"}},
	{"literal in the clause",
		"from mail.vynce.org [63.198.43.13] (vynce@vynce.org); Tue, 23 May 2000 22:00:16 -0400",
		api.Received{From: "mail.vynce.org", IP: "63.198.43.13", Date: "2000-05-24T02:00:16Z"}},
	{"LMTP",
		"from fermat.axiomtech.co.uk (LHLO fermat.axiomtech.co.uk) (89.145.71.216) by fermat.axiomtech.co.uk with LMTP; Mon, 6 Mar 2017 14:54:02 +0000 (GMT)",
		api.Received{From: "fermat.axiomtech.co.uk", By: "fermat.axiomtech.co.uk", With: "LMTP", IP: "89.145.71.216", Date: "2017-03-06T14:54:02Z"}},
	{"sendmail ident with an address",
		"from mpehp1.mpe-garching.mpg.de (root@130.183.70.10) by o05.xray.mpe.mpg.de with SMTP; 16 Dec 2002 14:31:36 -0000",
		api.Received{From: "mpehp1.mpe-garching.mpg.de", By: "o05.xray.mpe.mpg.de", With: "SMTP", IP: "130.183.70.10", Date: "2002-12-16T14:31:36Z"}},
	// Written for this test.
	{"bare IP comment, extra blanks, single-digit day",
		"from  a.example  (1.2.3.4)   by   b.example   with  ESMTP ;   Mon,  1 Jan  2024   10:00:00   +0000   (UTC) ",
		api.Received{From: "a.example", By: "b.example", With: "ESMTP", IP: "1.2.3.4", Date: "2024-01-01T10:00:00Z"}},
	{"HELO then IP comments",
		"from unknown (HELO x.example) (2001:DB8::1) by b; 1 Jan 2024 10:00:00 +0100",
		api.Received{From: "x.example", By: "b", IP: "2001:db8::1", Date: "2024-01-01T09:00:00Z"}},
	{"IPv4-mapped IPv6",
		"from a ([IPv6:::ffff:192.0.2.1]) by b; 1 Jan 2024 10:00:00 +0000",
		api.Received{From: "a", By: "b", IP: "192.0.2.1", Date: "2024-01-01T10:00:00Z"}},
	{"keywords in upper case",
		"FROM a.example ([192.0.2.7]) BY b.example WITH SMTP; 1 Jan 2024 10:00:00 +0000",
		api.Received{From: "a.example", By: "b.example", With: "SMTP", IP: "192.0.2.7", Date: "2024-01-01T10:00:00Z"}},
	{"empty", "", api.Received{}},
	{"garbage", "(((( [[[ <<< ;;; ))) ]]", api.Received{}},
	{"keywords only", "from by with via id for ;", api.Received{}},
}

func TestParse(t *testing.T) {
	for _, tc := range shapes {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.in); got != tc.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

// Dates converted to UTC by hand.
func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"Mon, 1 Jan 2024 10:00:00 +0000":                      "2024-01-01T10:00:00Z",
		"1 Jan 2024 10:00:00 -0500":                           "2024-01-01T15:00:00Z",
		"Mon,1 Jan 2024 10:00:00 +0100":                       "2024-01-01T09:00:00Z",
		"Monday, 01 January 2024 10:00:00 +0000":              "2024-01-01T10:00:00Z",
		"mon, 1 jan 2024 10:00:00 +0000":                      "2024-01-01T10:00:00Z",
		"Mon, 1 Jan 2024 10:00 GMT":                           "2024-01-01T10:00:00Z",
		"Mon, 1 Jan 2024 10:00:00 +01:00":                     "2024-01-01T09:00:00Z",
		"Mon, 1 Jan 2024 10:00:00 GMT+0100":                   "2024-01-01T09:00:00Z",
		"Mon, 1 Jan 2024 10:00:00":                            "2024-01-01T10:00:00Z",
		"Mon, 1 Jan 2024 10:00:00 +0000 UTC":                  "2024-01-01T10:00:00Z",
		"Mon, 1 Jan 2024 10:00:00 XYZT":                       "2024-01-01T10:00:00Z",
		"Mon, 1 Jan 2024 10:00:00.123 +0000":                  "2024-01-01T10:00:00Z",
		"Mon Jan  1 10:00:00 2024":                            "2024-01-01T10:00:00Z",
		"2024-01-01T10:00:00+02:00":                           "2024-01-01T08:00:00Z",
		"Tue, 24 Dec 91 08:14:38 EST":                         "1991-12-24T13:14:38Z",
		"Sun, 22 Dec 1996 23:25:10 +0100 (CET)":               "1996-12-22T22:25:10Z",
		"Wed, 4 Sep 2002 19:07:35 -0700 (PDT)":                "2002-09-05T02:07:35Z",
		"Sat, 14 Feb 2004 11:53:49 PST":                       "2004-02-14T19:53:49Z",
		"Thu, 29 Apr 2010 00:00:00 -0000":                     "2010-04-29T00:00:00Z",
		"Mon, 31 Dec 2023 23:30:00 -0100":                     "2024-01-01T00:30:00Z",
		"Mon, 1 Jan 2024 10:00:00 +0000 (a (nested) comment)": "2024-01-01T10:00:00Z",
		"":                                 "",
		"hello":                            "",
		"Mon, 32 Jan 2024 10:00:00 +0000":  "",
		"Mon, 1 Jan 2024 25:00:00 +0000":   "",
		"1 Jan 0000 00:00:00 +0100":        "", // year -1 in UTC
		"(unclosed comment 1 Jan 2024":     "",
		"Mon, 1 Jan 2024 10:00:00 +99999":  "2024-01-01T10:00:00Z", // a zone it cannot read is UTC
		"Mon,= 21 May 2018 05:07:54 +0000": "",                     // quoted-printable damage
	} {
		got, ok := ParseDate(in)
		if got != want || ok != (want != "") {
			t.Errorf("ParseDate(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// Work per field is bounded: a huge value is cut, and the date is still found at its end.
func TestLongValue(t *testing.T) {
	long := "from a.example ([192.0.2.1]) by b.example with ESMTP id " + strings.Repeat("x(", 1<<20) +
		"; Mon, 1 Jan 2024 10:00:00 +0000"
	start := time.Now()
	got := Parse(long)
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	want := api.Received{From: "a.example", By: "b.example", With: "ESMTP", IP: "192.0.2.1", Date: "2024-01-01T10:00:00Z"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, in := range []string{strings.Repeat("(", 1<<20), strings.Repeat("[", 1<<20), strings.Repeat("from ", 1<<18), strings.Repeat("<", 1<<20)} {
		Parse(in)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, tc := range shapes {
			Parse(tc.in)
		}
	}
}
