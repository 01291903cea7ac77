"""Realistic finance-mailbox emails and what a careful clerk would take from each.

Each entry is one email as the gateway delivers it (subject, plain-text body, ``From``) with the
exact expected extraction. The corpus is the specification of
:mod:`services.intake.email_understanding`: a change that breaks an entry changes behaviour.
Ids follow the demo data (``INV-2026-000123``, ``PAY-2026-000045``, ``CTR-2026-0003``); the
phone numbers, VAT ids, IBANs and postcodes in signatures are there to be ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.contract import RequestType

Amount = tuple[str, str]
"""An expected amount: the decimal string as written (``"12500.00"``) and the currency code."""


@dataclass(frozen=True)
class CorpusEmail:
    """One email and everything that must be understood from it."""

    name: str
    subject: str
    body: str
    sender: str
    sender_name: str | None
    sender_email: str | None
    request_type: RequestType | None
    invoice_ids: tuple[str, ...] = ()
    payment_ids: tuple[str, ...] = ()
    contract_ids: tuple[str, ...] = ()
    amounts: tuple[Amount, ...] = ()
    disputed: Amount | None = None
    expected: Amount | None = None
    credit_limit: Amount | None = None
    dates: tuple[date, ...] = ()


T = RequestType
NOV_2 = date(2026, 11, 2)

CORPUS: tuple[CorpusEmail, ...] = (
    CorpusEmail(
        name="formal_dispute_with_contract_price",
        subject="Dispute: invoice INV-2026-000123",
        body=(
            "Dear Accounts Receivable team,\n\n"
            "we have received invoice INV-2026-000123 dated 2 November 2026 for a total of USD 12,500.00.\n"
            "Under our contract CTR-2026-0003 the invoice total should be USD 11,900.00, so we were "
            "overcharged by USD 600.00.\n"
            "Please issue a credit note for the difference.\n\n"
            "Kind regards,\n"
            "Jane Doe\n"
            "Accounts Payable | Acme Logistics Inc.\n"
            "Phone +1 (555) 201-2026\n"
        ),
        sender="Jane Doe <Jane.Doe@Acme.example>",
        sender_name="Jane Doe",
        sender_email="jane.doe@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000123",),
        contract_ids=("CTR-2026-0003",),
        amounts=(("12500.00", "USD"), ("11900.00", "USD"), ("600.00", "USD")),
        disputed=("600.00", "USD"),
        expected=("11900.00", "USD"),
        dates=(NOV_2,),
    ),
    CorpusEmail(
        name="terse_one_liner_with_mangled_number",
        subject="inv2026000123",
        body="overcharged again. pls fix",
        sender="bob@acme.example",
        sender_name=None,
        sender_email="bob@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000123",),
    ),
    CorpusEmail(
        name="payment_remittance_with_bank_reference",
        subject="Remittance advice PAY-2026-000045",
        body=(
            "Hello,\n\n"
            "please find below our remittance for payment PAY-2026-000045 of EUR 8.450,00, sent by bank "
            "transfer on 03.11.2026 with bank reference ACME-REF-20261103-77.\n"
            "It covers invoices INV-2026-000201 and INV-2026-000202. Both still show as open in your "
            "portal.\n\n"
            "Mit freundlichen Grüßen\n"
            "Klaus Weber\n"
            "Rheintal Laboratories GmbH\n"
            "Hauptstraße 12, 79098 Freiburg\n"
            "Tel. +49 761 2026 000123\n"
            "USt-IdNr. DE 123 456 789\n"
            "IBAN DE89 3704 0044 0532 0130 00\n"
        ),
        sender="Klaus Weber <k.weber@rheintal-labs.example>",
        sender_name="Klaus Weber",
        sender_email="k.weber@rheintal-labs.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000201", "INV-2026-000202"),
        payment_ids=("PAY-2026-000045",),
        amounts=(("8450.00", "EUR"),),
        dates=(date(2026, 11, 3),),
    ),
    CorpusEmail(
        name="payment_without_payment_number",
        subject="Payment for invoice INV-2026-002383 still shown as open",
        body=(
            "Hello,\n\n"
            "we paid invoice INV-2026-002383 on 2026-11-02 by bank transfer: USD 4,709.08, bank reference "
            '"ACME 2383".\n'
            "Your latest statement still shows INV-2026-002383 as open. Could you please apply the payment "
            "and send us an updated statement?\n\n"
            "Kind regards,\n"
            "Wei Chen\n"
            "Rheintal Laboratories\n"
        ),
        sender="Wei Chen <wei.chen@rheintal-laboratories.example>",
        sender_name="Wei Chen",
        sender_email="wei.chen@rheintal-laboratories.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-002383",),
        amounts=(("4709.08", "USD"),),
        dates=(NOV_2,),
    ),
    CorpusEmail(
        name="credit_limit_increase_from_to",
        subject="Credit limit increase request",
        body=(
            "Hi team,\n\n"
            "our order volume has doubled this year. Please increase our credit limit from USD 50,000 to "
            "USD 100,000 effective Nov 15, 2026.\n\n"
            "Best regards,\n"
            "Maria Lopez\n"
            "CFO, Acme Logistics\n"
        ),
        sender="Maria Lopez <maria.lopez@acme.example>",
        sender_name="Maria Lopez",
        sender_email="maria.lopez@acme.example",
        request_type=T.CREDIT_LIMIT_CHANGE,
        amounts=(("50000", "USD"), ("100000", "USD")),
        credit_limit=("100000", "USD"),
        dates=(date(2026, 11, 15),),
    ),
    CorpusEmail(
        name="credit_limit_german_with_k",
        subject="Erhöhung Kreditlimit",
        body=(
            "Guten Tag,\n\n"
            "wir bitten darum, unser Kreditlimit auf 250k EUR zu erhöhen. Unser aktuelles Limit von "
            "100.000 EUR reicht für das Weihnachtsgeschäft nicht aus.\n\n"
            "Mit freundlichen Grüßen\n"
            "Jürgen Schäfer\n"
            "Schäfer & Söhne KG, Am Markt 3, 80331 München\n"
            "Tel. 089 2026 4455\n"
        ),
        sender='"Schäfer, Jürgen" <j.schaefer@schaefer-soehne.example>',
        sender_name="Schäfer, Jürgen",
        sender_email="j.schaefer@schaefer-soehne.example",
        request_type=T.CREDIT_LIMIT_CHANGE,
        amounts=(("250000", "EUR"), ("100000", "EUR")),
        credit_limit=("250000", "EUR"),
    ),
    CorpusEmail(
        name="credit_limit_current_then_requested",
        subject="Our credit line",
        body=(
            "Our current credit limit of USD 50,000 is too low for the Q1 orders; please increase it to "
            "USD 80,000."
        ),
        sender="ap@northwind.example",
        sender_name=None,
        sender_email="ap@northwind.example",
        request_type=T.CREDIT_LIMIT_CHANGE,
        amounts=(("50000", "USD"), ("80000", "USD")),
        credit_limit=("80000", "USD"),
    ),
    CorpusEmail(
        name="refund_of_double_payment",
        subject="Refund request - invoice INV-2026-000310 paid twice",
        body=(
            "Hello,\n\n"
            "by mistake we paid invoice INV-2026-000310 twice (payments PAY-2026-000101 and "
            "PAY-2026-000102). Please refund USD 1,250.00 to our account.\n\n"
            "Thanks,\n"
            "Tom\n"
        ),
        sender="Tom Baker <tom.baker@acme.example>",
        sender_name="Tom Baker",
        sender_email="tom.baker@acme.example",
        request_type=T.REFUND,
        invoice_ids=("INV-2026-000310",),
        payment_ids=("PAY-2026-000101", "PAY-2026-000102"),
        amounts=(("1250.00", "USD"),),
        disputed=("1250.00", "USD"),
    ),
    CorpusEmail(
        name="refund_of_credit_balance_french",
        subject="Demande de remboursement",
        body=(
            "Bonjour,\n\n"
            "notre compte présente un solde créditeur de 1 200,50 € suite au trop-perçu sur la facture "
            "n° 2026-000455. Merci de procéder au remboursement par virement.\n\n"
            "Cordialement,\n"
            "Amélie Dubois\n"
            "Comptabilité fournisseurs\n"
            "12 rue de la Paix, 75002 Paris\n"
            "Tél. : +33 1 42 26 00 12\n"
        ),
        sender="Amélie Dubois <amelie.dubois@lumiere.example>",
        sender_name="Amélie Dubois",
        sender_email="amelie.dubois@lumiere.example",
        request_type=T.REFUND,
        invoice_ids=("INV-2026-000455",),
        amounts=(("1200.50", "EUR"),),
    ),
    CorpusEmail(
        name="write_off_small_balance",
        subject="Small balance on INV-2026-000512",
        body=(
            "Hi,\n\n"
            "there is a small remaining balance of EUR 0,42 on invoice INV-2026-000512 due to bank fees. "
            "Could you please write it off?\n\n"
            "Cheers,\n"
            "Sam\n"
        ),
        sender="Sam Patel <sam.patel@acme.example>",
        sender_name="Sam Patel",
        sender_email="sam.patel@acme.example",
        request_type=T.WRITE_OFF,
        invoice_ids=("INV-2026-000512",),
        amounts=(("0.42", "EUR"),),
    ),
    CorpusEmail(
        name="write_off_german_ausbuchen",
        subject="Rundungsdifferenz Rechnung 2026-000620",
        body=(
            "Hallo,\n\n"
            "bei Rechnung 2026-000620 ist eine Rundungsdifferenz von 0,03 € offen geblieben. Bitte buchen "
            "Sie den Restbetrag aus.\n\n"
            "Viele Grüße\n"
            "Anna Becker\n"
        ),
        sender="Anna Becker <anna.becker@becker-bau.example>",
        sender_name="Anna Becker",
        sender_email="anna.becker@becker-bau.example",
        request_type=T.WRITE_OFF,
        invoice_ids=("INV-2026-000620",),
        amounts=(("0.03", "EUR"),),
        disputed=("0.03", "EUR"),
    ),
    CorpusEmail(
        name="address_change_with_postcode",
        subject="New billing address",
        body=(
            "Dear Sir or Madam,\n\n"
            "please note that we have moved. Our new billing address from 1 December 2026 is:\n\n"
            "Acme Logistics Inc.\n"
            "2026 Harbor Drive, Suite 400\n"
            "Boston, MA 02110\n\n"
            "Please update your records accordingly.\n\n"
            "Sincerely,\n"
            "Linda Park\n"
        ),
        sender="Linda Park <linda.park@acme.example>",
        sender_name="Linda Park",
        sender_email="linda.park@acme.example",
        request_type=T.ACCOUNT_UPDATE,
        dates=(date(2026, 12, 1),),
    ),
    CorpusEmail(
        name="bank_details_change",
        subject="Change of bank details",
        body=(
            "Hello,\n\n"
            "we have changed our bank account. Please use our new IBAN NL91 ABNA 0417 1643 00 (BIC ABNANL2A) "
            "for all refunds from 01.12.2026.\n\n"
            "Met vriendelijke groet,\n"
            "Pieter de Vries\n"
            "De Vries Handel B.V.\n"
            "KvK 12345678 | BTW NL123456789B01\n"
        ),
        sender="Pieter de Vries <p.devries@devries-handel.example>",
        sender_name="Pieter de Vries",
        sender_email="p.devries@devries-handel.example",
        request_type=T.ACCOUNT_UPDATE,
        dates=(date(2026, 12, 1),),
    ),
    CorpusEmail(
        name="new_accounts_payable_contact",
        subject="New AP contact",
        body=(
            "Hi,\n\n"
            "John Smith is no longer with the company. Please send all future invoices to "
            "ap@acme.example, attention Priya Raman.\n\n"
            "Thank you!\n"
            "Priya\n"
        ),
        sender="Priya Raman <priya.raman@acme.example>",
        sender_name="Priya Raman",
        sender_email="priya.raman@acme.example",
        request_type=T.ACCOUNT_UPDATE,
    ),
    CorpusEmail(
        name="vat_number_changed",
        subject="Our VAT number has changed",
        body=(
            "Dear team,\n\n"
            "following our merger our VAT number has changed to GB 123 4567 89. The old number "
            "GB 987 6543 21 is invalid from 1 January 2027. Please update your customer records.\n\n"
            "Regards,\n"
            "Oliver Hughes\n"
        ),
        sender="Oliver Hughes <oliver.hughes@thames-supply.example>",
        sender_name="Oliver Hughes",
        sender_email="oliver.hughes@thames-supply.example",
        request_type=T.ACCOUNT_UPDATE,
        dates=(date(2027, 1, 1),),
    ),
    CorpusEmail(
        name="contract_renewal_question",
        subject="Contract CTR-2026-0003 renewal",
        body=(
            "Hello,\n\n"
            "our contract CTR-2026-0003 expires on 2026-12-31. What are the contract renewal terms, and "
            "is the notice period still three months?\n\n"
            "Best,\n"
            "Greta\n"
        ),
        sender="Greta Lind <greta.lind@nordic-foods.example>",
        sender_name="Greta Lind",
        sender_email="greta.lind@nordic-foods.example",
        request_type=T.CONTRACT_QUERY,
        contract_ids=("CTR-2026-0003",),
        dates=(date(2026, 12, 31),),
    ),
    CorpusEmail(
        name="contract_payment_terms_mangled_id",
        subject="payment terms under ctr 2026 0017",
        body="Which payment terms apply under our agreement ctr 2026 0017 - 30 or 45 days?",
        sender="finance@sunrise-hotels.example",
        sender_name=None,
        sender_email="finance@sunrise-hotels.example",
        request_type=T.CONTRACT_QUERY,
        contract_ids=("CTR-2026-0017",),
    ),
    CorpusEmail(
        name="copy_of_invoice_demo_style",
        subject="Question about invoice INV-2026-000777",
        body="Hello,\n\ncould you send us a copy of invoice INV-2026-000777?\n\nThanks,\nWei Chen",
        sender="Wei Chen <wei.chen@rheintal-laboratories.example>",
        sender_name="Wei Chen",
        sender_email="wei.chen@rheintal-laboratories.example",
        request_type=T.SERVICE_REQUEST,
        invoice_ids=("INV-2026-000777",),
    ),
    CorpusEmail(
        name="statement_request",
        subject="Statement of account",
        body="Hi, can you please send us an updated statement of account for October? Thanks, Ken",
        sender="Ken Ito <ken.ito@sakura-trading.example>",
        sender_name="Ken Ito",
        sender_email="ken.ito@sakura-trading.example",
        request_type=T.SERVICE_REQUEST,
    ),
    CorpusEmail(
        name="portal_access",
        subject="Portal login",
        body=(
            "Hello, I cannot log in to the customer portal since yesterday. Could you reset my portal "
            "password?\n\nRegards\nNadia"
        ),
        sender="Nadia Haddad <nadia.haddad@cedar-imports.example>",
        sender_name="Nadia Haddad",
        sender_email="nadia.haddad@cedar-imports.example",
        request_type=T.SERVICE_REQUEST,
    ),
    CorpusEmail(
        name="vague_call_me",
        subject="Question",
        body="Hi, please call me back when you have a moment. Thanks, Mike",
        sender="Mike Ross <mike.ross@acme.example>",
        sender_name="Mike Ross",
        sender_email="mike.ross@acme.example",
        request_type=None,
    ),
    CorpusEmail(
        name="vague_about_an_invoice",
        subject="INV-2026-000888",
        body="Hello, we have a question about this invoice. Who can we talk to?\n\nBest regards,\nEva",
        sender="Eva Novak <eva.novak@praha-steel.example>",
        sender_name="Eva Novak",
        sender_email="eva.novak@praha-steel.example",
        request_type=None,
        invoice_ids=("INV-2026-000888",),
    ),
    CorpusEmail(
        name="dispute_or_refund_needs_a_person",
        subject="INV-2026-000345",
        body=(
            "We were overcharged on INV-2026-000345 and have already paid it in full. Please refund the "
            "USD 35.10 we paid too much."
        ),
        sender="ap@bluebird.example",
        sender_name=None,
        sender_email="ap@bluebird.example",
        request_type=None,
        invoice_ids=("INV-2026-000345",),
        amounts=(("35.10", "USD"),),
        disputed=("35.10", "USD"),
    ),
    CorpusEmail(
        name="credit_balance_question_needs_a_person",
        subject="Credit balance",
        body="There is a credit balance of USD 35.10 on our account. What happens with it?",
        sender="ap@bluebird.example",
        sender_name=None,
        sender_email="ap@bluebird.example",
        request_type=None,
        amounts=(("35.10", "USD"),),
    ),
    CorpusEmail(
        name="gmail_forward_of_our_invoice",
        subject="Fwd: Your invoice INV-2026-000123",
        body=(
            "This price is wrong, we never agreed to it. Please correct.\n\n"
            "---------- Forwarded message ---------\n"
            "From: Billing <billing@us.example>\n"
            "Date: Mon, Nov 2, 2026 at 10:15 AM\n"
            "Subject: Your invoice INV-2026-000123\n"
            "To: <jane@acme.example>\n\n"
            "Dear customer,\n\n"
            "please find attached invoice INV-2026-000123 over USD 4,709.08, due 2026-12-02.\n\n"
            "Kind regards\n"
            "Billing team\n"
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000123",),
        amounts=(("4709.08", "USD"),),
        dates=(date(2026, 12, 2),),
    ),
    CorpusEmail(
        name="outlook_forward_of_supplier_complaint",
        subject="FW: Invoice 2026-000342 - quantity",
        body=(
            "Forwarding from our warehouse, please check.\n\n"
            "________________________________\n"
            "From: Warehouse Team <warehouse@acme.example>\n"
            "Sent: Tuesday, November 3, 2026 8:02 AM\n"
            "To: Accounts Payable <ap@acme.example>\n"
            "Subject: Invoice 2026-000342 - quantity\n\n"
            "We were invoiced for 120 pallets but only 100 were delivered. The wrong quantity means we "
            "were overcharged by $2,400.00.\n"
        ),
        sender="Accounts Payable <ap@acme.example>",
        sender_name="Accounts Payable",
        sender_email="ap@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000342",),
        amounts=(("2400.00", "USD"),),
        disputed=("2400.00", "USD"),
    ),
    CorpusEmail(
        name="reply_still_not_fixed_uses_quoted_documents",
        subject="RE: Your statement",
        body=(
            "Still not fixed!!\n\n"
            "On Mon, Nov 2, 2026 at 9:00 AM Billing <billing@us.example> wrote:\n"
            "> Dear customer, our records show invoice INV-2026-000901 with an open amount of USD 300.00.\n"
            "> Please pay by 2026-11-30.\n"
        ),
        sender="Rita Gomez <rita.gomez@acme.example>",
        sender_name="Rita Gomez",
        sender_email="rita.gomez@acme.example",
        request_type=None,
        invoice_ids=("INV-2026-000901",),
    ),
    CorpusEmail(
        name="reply_with_own_document_ignores_quoted_ones",
        subject="Re: Open items",
        body=(
            "We paid INV-2026-000950 last week, bank reference 4471-2026. The rest we will pay on "
            "15.12.2026.\n\n"
            "Best regards\n"
            "Rita\n\n"
            "On 02/11/2026 10:00, Billing <billing@us.example> wrote:\n"
            "> Open items: INV-2026-000950 USD 1,000.00; INV-2026-000951 USD 2,000.00\n"
        ),
        sender="Rita Gomez <rita.gomez@acme.example>",
        sender_name="Rita Gomez",
        sender_email="rita.gomez@acme.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000950",),
        dates=(date(2026, 12, 15),),
    ),
    CorpusEmail(
        name="inline_reply_between_quotes",
        subject="Re: Questions on your dispute",
        body=(
            "On Tue, Nov 3, 2026, AR Team <ar@us.example> wrote:\n"
            "> Which invoice is affected?\n"
            "INV-2026-000432\n\n"
            "> What should the amount be?\n"
            "It should be EUR 3.150,00 as agreed, we were overcharged.\n\n"
            "> Anything else?\n"
            "No.\n"
        ),
        sender="Lukas Meier <lukas.meier@alpen-tech.example>",
        sender_name="Lukas Meier",
        sender_email="lukas.meier@alpen-tech.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000432",),
        amounts=(("3150.00", "EUR"),),
        expected=("3150.00", "EUR"),
    ),
    CorpusEmail(
        name="german_reply_wrong_price_asks_for_correction",
        subject="AW: Rechnung INV-2026-000555",
        body=(
            "Hallo,\n\n"
            "der Preis auf der Rechnung ist falsch. Laut Vertrag sollte die Rechnung 2.380,00 EUR betragen, "
            "nicht 2.618,00 EUR. Bitte korrigieren Sie die Rechnung.\n\n"
            "Gruß\n"
            "Stefan\n\n"
            "Am 02.11.2026 um 10:15 schrieb Billing <billing@us.example>:\n"
            "> Anbei Rechnung INV-2026-000555 über 2.618,00 EUR.\n"
        ),
        sender="Stefan Wolf <stefan.wolf@wolf-gmbh.example>",
        sender_name="Stefan Wolf",
        sender_email="stefan.wolf@wolf-gmbh.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000555",),
        amounts=(("2380.00", "EUR"), ("2618.00", "EUR")),
        expected=("2380.00", "EUR"),
    ),
    CorpusEmail(
        name="french_dispute_with_reply_chain",
        subject="RE: Facture 2026-000610",
        body=(
            "Bonjour,\n\n"
            "nous contestons la facture 2026-000610 : le montant de 1 450,00 € est incorrect, le prix "
            "convenu est de 1 300,00 €.\n\n"
            "Bien cordialement,\n"
            "Camille Laurent\n\n"
            "Le lun. 2 nov. 2026 à 09:12, Facturation <billing@us.example> a écrit :\n"
            "> Veuillez trouver ci-joint la facture 2026-000610.\n"
        ),
        sender="Camille Laurent <camille.laurent@bordeaux-vins.example>",
        sender_name="Camille Laurent",
        sender_email="camille.laurent@bordeaux-vins.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000610",),
        amounts=(("1450.00", "EUR"), ("1300.00", "EUR")),
        expected=("1300.00", "EUR"),
    ),
    CorpusEmail(
        name="spanish_wrong_amount_asks_for_rectificativa",
        subject="Factura 2026-000733 incorrecta",
        body=(
            "Hola,\n\n"
            "la factura nº 2026-000733 tiene un importe incorrecto. El importe debería ser 950,00 EUR. "
            "Por favor, envíen una factura rectificativa.\n\n"
            "Saludos cordiales,\n"
            "Javier Martínez\n"
            "Calle Mayor 15, 28013 Madrid\n"
        ),
        sender="Javier Martínez <javier.martinez@iberia-logistica.example>",
        sender_name="Javier Martínez",
        sender_email="javier.martinez@iberia-logistica.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000733",),
        amounts=(("950.00", "EUR"),),
        expected=("950.00", "EUR"),
    ),
    CorpusEmail(
        name="dutch_payment_query",
        subject="Betaling factuur 2026-000801",
        body=(
            "Goedemiddag,\n\n"
            "wij hebben factuur 2026-000801 op 02-11-2026 betaald (€ 1.234,56), maar de betaling is nog "
            "niet verwerkt. Zie het betalingsbewijs in de bijlage.\n\n"
            "Met vriendelijke groet,\n"
            "Sanne Bakker\n"
            "Tel: 020 2026 0801\n"
        ),
        sender="Sanne Bakker <sanne.bakker@bakker-bloemen.example>",
        sender_name="Sanne Bakker",
        sender_email="sanne.bakker@bakker-bloemen.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000801",),
        amounts=(("1234.56", "EUR"),),
        dates=(NOV_2,),
    ),
    CorpusEmail(
        name="several_mangled_invoice_numbers",
        subject="Wrong prices on three invoices",
        body=(
            "The following invoices show the wrong price for SKU A-100:\n"
            "- INV 2026-000123\n"
            "- inv_2026_000124\n"
            "- Inv.2026.000125\n"
            "- INV-2026-000123 (again, see above)\n"
            "Please credit the difference.\n"
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000123", "INV-2026-000124", "INV-2026-000125"),
    ),
    CorpusEmail(
        name="signature_full_of_numbers_but_no_ids",
        subject="Overcharged on INV-2026-000140",
        body=(
            "We were overcharged on INV-2026-000140, please check.\n\n"
            "-- \n"
            "Hans Gruber | Controlling\n"
            "Gruber Maschinenbau AG, Industriestr. 7, 70565 Stuttgart\n"
            "Tel +49 711 2026 000140 | Fax +49 711 2026 000141\n"
            "USt-IdNr. DE 2026 000123 | HRB 2026 000456\n"
            "IBAN DE44 5001 0517 5407 3249 31 | Founded 1998, since 2026 part of Gruber Group\n"
            "Invoice questions: +49 711 2026 000199\n"
        ),
        sender="Hans Gruber <hans.gruber@gruber-ag.example>",
        sender_name="Hans Gruber",
        sender_email="hans.gruber@gruber-ag.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000140",),
    ),
    CorpusEmail(
        name="emoji_and_accented_name",
        subject="Refund 😊 for INV-2026-000150",
        body=(
            "Hi! 👋\n\nWe returned the goods on 5 Nov 2026, so please refund us €250.00 for invoice "
            "INV-2026-000150. Merci beaucoup 🙏\n\nZoë"
        ),
        sender="Zoë Müller-Lüdenscheidt <zoe.mueller@café-berlin.example>",
        sender_name="Zoë Müller-Lüdenscheidt",
        sender_email="zoe.mueller@café-berlin.example",
        request_type=T.REFUND,
        invoice_ids=("INV-2026-000150",),
        amounts=(("250.00", "EUR"),),
        disputed=("250.00", "EUR"),
        dates=(date(2026, 11, 5),),
    ),
    CorpusEmail(
        name="right_to_left_name_and_greeting",
        subject="فاتورة INV-2026-000160 - payment status",
        body=(
            "مرحبا،\n\n"
            "We have already paid invoice INV-2026-000160 (AED 18,365.00) by wire transfer on "
            "Nov 1, 2026. Please confirm the payment status.\n\n"
            "شكرا\n"
            "أحمد\n"
        ),
        sender='"أحمد الفارسي" <ahmed@gulf-trading.example>',
        sender_name="أحمد الفارسي",
        sender_email="ahmed@gulf-trading.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000160",),
        amounts=(("18365.00", "AED"),),
        dates=(date(2026, 11, 1),),
    ),
    CorpusEmail(
        name="swiss_francs_with_apostrophes",
        subject="Rechnung INV-2026-000170 zu hoch",
        body=(
            "Grüezi\n\n"
            "Die Rechnung INV-2026-000170 über CHF 12'480.00 ist zu hoch berechnet. Vereinbarter Preis "
            "CHF 11'250.00, die Differenz von CHF 1'230.00 bitten wir gutzuschreiben.\n\n"
            "Freundliche Grüsse\n"
            "Reto Keller\n"
            "Keller Uhren AG, Bahnhofstrasse 1, 8001 Zürich\n"
        ),
        sender="Reto Keller <reto.keller@keller-uhren.example>",
        sender_name="Reto Keller",
        sender_email="reto.keller@keller-uhren.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000170",),
        amounts=(("12480.00", "CHF"), ("11250.00", "CHF"), ("1230.00", "CHF")),
        disputed=("1230.00", "CHF"),
        expected=("11250.00", "CHF"),
    ),
    CorpusEmail(
        name="pounds_sterling_billed_twice",
        subject="Billed twice",
        body=(
            "Good morning,\n\nwe have been billed twice for the October service: INV-2026-000180 and "
            "INV-2026-000181, each £99.95. Please cancel one of them.\n\nMany thanks,\nEmma"
        ),
        sender="Emma Clarke <emma.clarke@thames-supply.example>",
        sender_name="Emma Clarke",
        sender_email="emma.clarke@thames-supply.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000180", "INV-2026-000181"),
        amounts=(("99.95", "GBP"),),
    ),
    CorpusEmail(
        name="outlook_reply_with_original_message",
        subject="RE: Late fee",
        body=(
            "We dispute the late fee of $75.00 on INV-2026-000190; the payment was made on time.\n\n"
            "Thanks\n"
            "Carlos\n\n"
            "-----Original Message-----\n"
            "From: Collections <collections@us.example>\n"
            "Sent: Monday, November 2, 2026 9:30 AM\n"
            "To: Carlos Ruiz <carlos.ruiz@acme.example>\n"
            "Subject: Late fee\n\n"
            "A late fee of $75.00 was added to INV-2026-000190 and INV-2026-000191.\n"
        ),
        sender="Carlos Ruiz <carlos.ruiz@acme.example>",
        sender_name="Carlos Ruiz",
        sender_email="carlos.ruiz@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000190",),
        amounts=(("75.00", "USD"),),
        disputed=("75.00", "USD"),
    ),
    CorpusEmail(
        name="outlook_reply_headers_without_marker",
        subject="RE: Payment reminder",
        body=(
            "Payment PAY-2026-000333 was sent on 30 October 2026, please check again.\n\n"
            "From: Collections <collections@us.example>\n"
            "Sent: Friday, October 30, 2026 4:00 PM\n"
            "To: ap@acme.example\n"
            "Subject: Payment reminder\n\n"
            "Invoice INV-2026-000200 over USD 5,000.00 is overdue.\n"
        ),
        sender="ap@acme.example",
        sender_name=None,
        sender_email="ap@acme.example",
        request_type=T.PAYMENT_QUERY,
        payment_ids=("PAY-2026-000333",),
        dates=(date(2026, 10, 30),),
    ),
    CorpusEmail(
        name="sent_from_iphone",
        subject="Refund",
        body="Pls refund the overpayment on inv 2026 000210 asap\n\nSent from my iPhone",
        sender="Dave <dave@acme.example>",
        sender_name="Dave",
        sender_email="dave@acme.example",
        request_type=T.REFUND,
        invoice_ids=("INV-2026-000210",),
    ),
    CorpusEmail(
        name="reissue_with_correct_po_number",
        subject="Missing PO number on invoice INV-2026-000220",
        body=(
            "Hello,\n\nour PO number 4500123456 is missing on invoice INV-2026-000220, so our system "
            "rejects it. Please reissue the invoice with the PO number.\n\nBest regards\nLi Wang"
        ),
        sender="Li Wang <li.wang@dragon-electronics.example>",
        sender_name="Li Wang",
        sender_email="li.wang@dragon-electronics.example",
        request_type=T.INVOICE_CORRECTION,
        invoice_ids=("INV-2026-000220",),
    ),
    CorpusEmail(
        name="wrong_address_on_invoice",
        subject="Invoice INV-2026-000230",
        body=(
            "The invoice INV-2026-000230 shows the wrong billing address (our old office). Please correct "
            "the invoice and send it again."
        ),
        sender="Olga Ivanova <olga.ivanova@acme.example>",
        sender_name="Olga Ivanova",
        sender_email="olga.ivanova@acme.example",
        request_type=T.INVOICE_CORRECTION,
        invoice_ids=("INV-2026-000230",),
    ),
    CorpusEmail(
        name="payment_number_only_in_subject",
        subject="pay 2026 000412",
        body="Hi, this payment has not been applied yet. Can you look into it?",
        sender="Ana Souza <ana.souza@rio-cafe.example>",
        sender_name="Ana Souza",
        sender_email="ana.souza@rio-cafe.example",
        request_type=T.PAYMENT_QUERY,
        payment_ids=("PAY-2026-000412",),
    ),
    CorpusEmail(
        name="narrow_no_break_space_amounts",
        subject="Écart sur la facture INV-2026-000240",
        body=(
            "Bonjour,\n\nla facture INV-2026-000240 indique 12\u202f500,00 € alors que le prix convenu est "
            "de 12\u202f000,00 €. Nous avons été trop facturés : écart de 500,00 €.\n\nCordialement\nLéa"
        ),
        sender="Léa Martin <lea.martin@provence-textile.example>",
        sender_name="Léa Martin",
        sender_email="lea.martin@provence-textile.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000240",),
        amounts=(("12500.00", "EUR"), ("12000.00", "EUR"), ("500.00", "EUR")),
        disputed=("500.00", "EUR"),
        expected=("12000.00", "EUR"),
    ),
    CorpusEmail(
        name="many_date_formats",
        subject="Payment dates for INV-2026-000250",
        body=(
            "We paid invoice INV-2026-000250 in two parts: USD 1,000.00 on Nov 2, 2026 and USD 500.00 on "
            "2026-11-09. The remittance went out 09.11.2026 as well."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000250",),
        amounts=(("1000.00", "USD"), ("500.00", "USD")),
        dates=(NOV_2, date(2026, 11, 9)),
    ),
    CorpusEmail(
        name="slash_date_read_day_first",
        subject="Remittance",
        body="Remittance: EUR 640,00 paid 2/11/2026 for Rechnung 2026-000260.",
        sender="buchhaltung@alpen-tech.example",
        sender_name=None,
        sender_email="buchhaltung@alpen-tech.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000260",),
        amounts=(("640.00", "EUR"),),
        dates=(NOV_2,),
    ),
    CorpusEmail(
        name="slash_date_only_valid_us_way",
        subject="Check sent",
        body="We have already paid invoice #2026-000270 by wire transfer on 11/25/2026, $3,200.00.",
        sender="AP Dept <ap@texas-oil.example>",
        sender_name="AP Dept",
        sender_email="ap@texas-oil.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000270",),
        amounts=(("3200.00", "USD"),),
        dates=(date(2026, 11, 25),),
    ),
    CorpusEmail(
        name="unit_prices_are_not_expected_totals",
        subject="Higher price on INV-2026-000280",
        body=(
            "The invoice INV-2026-000280 charges a higher price than agreed: the agreed price is "
            "USD 40.00 per unit, you charged USD 45.00 per unit for 200 units."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000280",),
        amounts=(("40.00", "USD"), ("45.00", "USD")),
    ),
    CorpusEmail(
        name="quantities_without_currency_are_not_amounts",
        subject="Delivery on INV-2026-000290",
        body=(
            "We ordered 12,500 units but the goods were never delivered in full; only 10.000 arrived. "
            "Reference 2026/11/4471."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000290",),
    ),
    CorpusEmail(
        name="spanish_credit_limit",
        subject="Solicitud de aumento del límite de crédito",
        body=(
            "Buenos días,\n\nsolicitamos aumentar nuestro límite de crédito hasta 75.000 EUR a partir del "
            "1 de diciembre de 2026.\n\nAtentamente,\nLucía Fernández"
        ),
        sender="Lucía Fernández <lucia.fernandez@iberia-logistica.example>",
        sender_name="Lucía Fernández",
        sender_email="lucia.fernandez@iberia-logistica.example",
        request_type=T.CREDIT_LIMIT_CHANGE,
        amounts=(("75000", "EUR"),),
        credit_limit=("75000", "EUR"),
        dates=(date(2026, 12, 1),),
    ),
    CorpusEmail(
        name="french_address_change",
        subject="Changement d'adresse",
        body=(
            "Bonjour,\n\nmerci de noter notre nouvelle adresse de facturation à partir du "
            "1er janvier 2027 :\n"
            "Lumière SARL, 8 avenue Montaigne, 75008 Paris.\n\nCordialement,\nJulien Petit"
        ),
        sender="Julien Petit <julien.petit@lumiere.example>",
        sender_name="Julien Petit",
        sender_email="julien.petit@lumiere.example",
        request_type=T.ACCOUNT_UPDATE,
        dates=(date(2027, 1, 1),),
    ),
    CorpusEmail(
        name="company_renamed",
        subject="Company name change",
        body=(
            "Dear partners,\n\nAcme Logistics Inc. has been renamed to Acme Global Logistics Inc. as of "
            "1 November 2026. Please update your records; invoices should carry the new company name."
        ),
        sender="Legal <legal@acme.example>",
        sender_name="Legal",
        sender_email="legal@acme.example",
        request_type=T.ACCOUNT_UPDATE,
        dates=(date(2026, 11, 1),),
    ),
    CorpusEmail(
        name="difference_of_disputed_amount",
        subject="INV-2026-000300 discrepancy",
        body=(
            "Hello, there is a difference of USD 200.00 between the quote and invoice INV-2026-000300. "
            "Please explain."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000300",),
        amounts=(("200.00", "USD"),),
        disputed=("200.00", "USD"),
    ),
    CorpusEmail(
        name="should_have_been_euro_amounts",
        subject="Invoice INV-2026-000320",
        body=(
            "The invoice total should have been EUR 4.500,00 and not EUR 5.000,00 - we are being overcharged."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000320",),
        amounts=(("4500.00", "EUR"), ("5000.00", "EUR")),
        expected=("4500.00", "EUR"),
    ),
    CorpusEmail(
        name="lower_case_trailing_code",
        subject="paid",
        body="hi we already paid 12500 usd for invoice inv-2026-000330 on 2026-11-02",
        sender="JOE@ACME.EXAMPLE",
        sender_name=None,
        sender_email="joe@acme.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000330",),
        amounts=(("12500", "USD"),),
        dates=(NOV_2,),
    ),
    CorpusEmail(
        name="subject_only_refund",
        subject="Refund",
        body="",
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.REFUND,
    ),
    CorpusEmail(
        name="garbage_sender",
        subject="Overcharged",
        body="We were overcharged on INV-2026-000340.",
        sender="undisclosed-recipients:;",
        sender_name=None,
        sender_email=None,
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000340",),
    ),
    CorpusEmail(
        name="name_without_usable_address",
        subject="Dispute",
        body="We dispute invoice INV-2026-000350.",
        sender="Jane Doe <jane at acme dot example>",
        sender_name="Jane Doe",
        sender_email=None,
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000350",),
    ),
    CorpusEmail(
        name="ticket_and_order_numbers_are_not_invoices",
        subject="Ticket 2026-000777",
        body=(
            "Regarding ticket no. 2026-000777 and order 2026-000778: our payment of USD 980.00 has not "
            "been applied to invoice INV-2026-000360."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000360",),
        amounts=(("980.00", "USD"),),
    ),
    CorpusEmail(
        name="begin_forwarded_bank_advice",
        subject="Fwd: Zahlungsavis",
        body=(
            "See the bank's advice below. The payment is still not applied in your statement.\n\n"
            "Begin forwarded message:\n\n"
            "From: Bank <noreply@bank.example>\n"
            "Date: 2 November 2026 at 08:00:00 CET\n"
            "To: Buchhaltung <buchhaltung@wolf-gmbh.example>\n"
            "Subject: Zahlungsavis PAY-2026-000460\n\n"
            "Überweisung über 3.570,00 EUR an Billing Corp, Verwendungszweck Rechnung 2026-000470.\n"
        ),
        sender="Buchhaltung <buchhaltung@wolf-gmbh.example>",
        sender_name="Buchhaltung",
        sender_email="buchhaltung@wolf-gmbh.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000470",),
        payment_ids=("PAY-2026-000460",),
        amounts=(("3570.00", "EUR"),),
    ),
    CorpusEmail(
        name="thanks_opening_is_not_a_signature",
        subject="INV-2026-000480",
        body=(
            "Thanks,\n\n"
            "we noticed invoice INV-2026-000480 was billed twice this month. Please cancel the duplicate.\n\n"
            "Regards,\nPaula"
        ),
        sender="Paula Costa <paula.costa@lisboa-import.example>",
        sender_name="Paula Costa",
        sender_email="paula.costa@lisboa-import.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000480",),
    ),
    CorpusEmail(
        name="postscript_after_signature_is_own_text",
        subject="Copy of invoice please",
        body=(
            "Hello, please send us a copy of the invoice for October.\n\n"
            "Best regards,\n"
            "Ines\n\n"
            "P.S. The invoice number is INV-2026-000490.\n"
        ),
        sender="Ines Roth <ines.roth@roth-druck.example>",
        sender_name="Ines Roth",
        sender_email="ines.roth@roth-druck.example",
        request_type=T.SERVICE_REQUEST,
        invoice_ids=("INV-2026-000490",),
    ),
    CorpusEmail(
        name="bare_hash_number_without_keyword_is_ignored",
        subject="Our ref #2026-000500",
        body="Please send us an account statement. Our internal ref is #2026-000501.",
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.SERVICE_REQUEST,
    ),
    CorpusEmail(
        name="contract_price_dispute_with_contract_id",
        subject="Price on invoice INV-2026-002252 does not match our contract",
        body=(
            "Dear team,\n\ninvoice INV-2026-002252 bills SKU X-12 at USD 4.85, but our contract "
            "CTR-2026-0044 says USD 4.62 per unit. The difference of USD 96.60 should be credited.\n\n"
            "Regards,\nJane"
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-002252",),
        contract_ids=("CTR-2026-0044",),
        amounts=(("4.85", "USD"), ("4.62", "USD"), ("96.60", "USD")),
        disputed=("96.60", "USD"),
    ),
    CorpusEmail(
        name="mixed_currencies_and_code_first",
        subject="Payment in two currencies",
        body=(
            "We paid INV-2026-000510 (USD 2,000.00) and INV-2026-000511 (EUR 1.850,00) by bank transfer "
            "on 3 Nov 2026."
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.PAYMENT_QUERY,
        invoice_ids=("INV-2026-000510", "INV-2026-000511"),
        amounts=(("2000.00", "USD"), ("1850.00", "EUR")),
        dates=(date(2026, 11, 3),),
    ),
    CorpusEmail(
        name="supplier_form_request",
        subject="Vendor registration",
        body=(
            "Hello,\n\nour procurement needs a W-9 and a completed vendor registration form from you before "
            "we can pay invoice INV-2026-000520.\n\nThank you,\nRachel"
        ),
        sender="Rachel Green <rachel.green@central-perk.example>",
        sender_name="Rachel Green",
        sender_email="rachel.green@central-perk.example",
        request_type=T.SERVICE_REQUEST,
        invoice_ids=("INV-2026-000520",),
    ),
    CorpusEmail(
        name="mailto_comment_style_sender",
        subject="Write-off",
        body="Please write off the remaining balance of USD 1.20 on INV-2026-000530.",
        sender="fred@acme.example (Fred Flint)",
        sender_name="Fred Flint",
        sender_email="fred@acme.example",
        request_type=T.WRITE_OFF,
        invoice_ids=("INV-2026-000530",),
        amounts=(("1.20", "USD"),),
    ),
    CorpusEmail(
        name="encoded_word_sender",
        subject="Adressänderung",
        body="Bitte beachten Sie unsere neue Adresse ab 01.01.2027: Seestraße 5, 78464 Konstanz.",
        sender="=?utf-8?q?J=C3=BCrgen_M=C3=B6ller?= <moeller@see-gmbh.example>",
        sender_name="Jürgen Möller",
        sender_email="moeller@see-gmbh.example",
        request_type=T.ACCOUNT_UPDATE,
        dates=(date(2027, 1, 1),),
    ),
    CorpusEmail(
        name="two_line_gmail_attribution",
        subject="Re: Credit note",
        body=(
            "Thanks, but the credit note is still missing - we were overcharged by USD 150.00 on "
            "INV-2026-000540.\n\n"
            "On Mon, Nov 2, 2026 at 10:15 AM Accounts Receivable Team <\n"
            "ar-team@us.example> wrote:\n\n"
            "We will issue a credit note for INV-2026-000541 shortly.\n"
        ),
        sender="Jane Doe <jane@acme.example>",
        sender_name="Jane Doe",
        sender_email="jane@acme.example",
        request_type=T.BILLING_DISPUTE,
        invoice_ids=("INV-2026-000540",),
        amounts=(("150.00", "USD"),),
        disputed=("150.00", "USD"),
    ),
    CorpusEmail(
        name="hebrew_greeting_statement_request",
        subject="Statement request",
        body="שלום,\n\nPlease send us a statement of account for Q3.\n\nתודה\nדנה",
        sender="Dana Levi <dana.levi@telaviv-tech.example>",
        sender_name="Dana Levi",
        sender_email="dana.levi@telaviv-tech.example",
        request_type=T.SERVICE_REQUEST,
    ),
    CorpusEmail(
        name="dollar_million_credit_limit",
        subject="Credit limit",
        body="We request a new credit limit of $1.5 million for 2027.",
        sender="Treasury <treasury@bigcorp.example>",
        sender_name="Treasury",
        sender_email="treasury@bigcorp.example",
        request_type=T.CREDIT_LIMIT_CHANGE,
        amounts=(("1500000", "USD"),),
        credit_limit=("1500000", "USD"),
    ),
)
