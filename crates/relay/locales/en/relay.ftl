# Every text a source sees. Russian (ru) and Kazakh (kk) files have the same
# keys; a key missing there falls back to this English text. Keep sentences
# short and words plain: many sources read on a phone, under stress.

site-name = Secure testimony
language-name = English
languages-label = Language

## Page footer
footer-promise = This page uses no JavaScript, no cookies and nothing from other sites. What you send is encrypted for the reviewers before it is stored. This server cannot read what it stores.

## Landing page and form
form-title = Send testimony
form-intro = Describe what happened in your own words. You can attach documents, photos, audio or video.
safety-title = Before you start
safety-tor = Use Tor Browser if you can. It hides where you connect from.
safety-device = Do not use a work computer or a shared device.
safety-names = Leave out names, including your own, unless they are needed. Remove names from files if you can.
safety-next = What happens next: trusted reviewers read your testimony on a computer that is never online. Nobody here can see who sent it.
required = (required)
optional = (optional)
field-category = What is it about?
field-category-choose = Choose one
field-text = Your testimony
field-text-help = Write as much or as little as you want.
field-region = Region or city
field-region-any = Not said
field-when = When did it happen?
field-when-help = Month and year are enough. We do not ask for exact dates.
field-month = Month
field-year = Year
field-files = Files
field-files-help = { $files ->
    [one] Up to 1 file
   *[other] Up to { $files } files
}, { $mib } MiB in all.
submit-button = Send securely

month-1 = January
month-2 = February
month-3 = March
month-4 = April
month-5 = May
month-6 = June
month-7 = July
month-8 = August
month-9 = September
month-10 = October
month-11 = November
month-12 = December

## Errors on the form
error-summary-title = Your testimony was not sent
error-summary-keep = Your text is still below. Please choose the files again.
error-category = Please choose what the testimony is about.
error-empty = Please write your testimony or attach a file.
error-region = The region is not valid.
error-month-needs-year = Please choose the year too, or no month.
error-year = The year is not valid.
error-month = The month is not valid.
error-text-too-long = The text is longer than this service accepts.
error-files-too-large = The files are larger than this service accepts.
error-too-many-files = Too many files were attached.
error-not-utf8 = The text could not be read. Please send it again.
error-incomplete = The form did not arrive complete. Please send it again.
error-unexpected-field = The form had an unexpected field.
error-duplicate-field = The form had a field twice.
error-field-required = Please answer this question.
error-choice = Please choose one of the options.

## Success page
received-title = Received and stored safely
received-body = Your testimony was encrypted for the reviewers and is stored safely. Only the reviewers can read it. This server cannot.
received-nothing-kept = Nothing about you was recorded: no address, no device details, no exact time.
received-close = You can close this page now. If you used a shared device, close the browser too.
received-more = Send more

## Error pages
busy-title = The service is busy
busy-body = Nothing was stored. Please try again in a few minutes.
failed-title = Something went wrong
failed-body = Your testimony was NOT stored. Please try again later.
not-found-title = Page not found
not-found-body = There is no page at this address.
back-to-form = Back to the form
