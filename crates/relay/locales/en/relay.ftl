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
received-nothing-kept = This server kept no address and no device details, and of the time only the day. Your internet provider can still see that you connected to this site; the Tor Browser hides that.
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
already-title = Already received
already-body = This testimony was received and stored before; it was not stored a second time. There is nothing more to do. If you asked for a codename, it was shown once, on the page after you sent it.
demo-banner = Test relay: not safe for real testimony. Its reviewer key is kept next to the data.
post-only-title = This page cannot be opened again
post-only-body = It was the answer to a form that was sent. If you saw “Received and stored safely”, your testimony is stored and there is nothing more to do. To send more, start again from the form.

## Navigation
sections-label = Sections
nav-send = Send testimony
nav-followup = Come back with a codename
footer-promise-followup = These pages use no JavaScript and nothing from other sites. After you enter your codename they keep one cookie, which ends when you log out, after 30 minutes without use, or when you close the browser.

## Codename choice on the form
field-followup = Coming back later
field-followup-help = With a codename you can come back to read replies from the reviewers and to add more. Nobody else can link your testimony to you.
field-followup-yes = Give me a codename

## Codename on the success page
codename-title = Your codename
codename-intro = These eight words are your codename. With them you can come back to this site, read replies from the reviewers and add more testimony.
codename-once = This is the only time they are shown. This server does not keep them and cannot show them again.
codename-keep = Write them on paper or learn them by heart. Do not keep them in a file, a photo or a message on your phone.
codename-secret = Anyone who has the words can read the replies meant for you. Tell nobody.
codename-use = To come back, choose “Come back with a codename” at the top of any page.
codename-failed = We could not make a codename for you just now. Your testimony is stored all the same. To add more later, send a new testimony.

## Follow-up: entering the codename
followup-title = Come back with your codename
followup-intro = Enter the eight words you were given after sending your testimony. You will see replies from the reviewers and can add more.
followup-codename = Your codename
followup-codename-help = Eight words, in order, separated by spaces (commas, hyphens and numbering are fine too). Capital letters do not matter. The words are English words: type them as they were shown, in Latin letters.
followup-login-button = Continue
followup-no-codename = No codename? You can send new testimony at any time from the main page.
codename-error-title = Please check your codename
codename-error-count = A codename has exactly eight words.
codename-error-word = Word { $n } is not in the codename word list. Please check its spelling; the other words are kept below.
codename-unknown-title = Codename not recognised
codename-unknown-body = We could not find this codename. Please check the words and their order, and try again.
session-ended-title = Please enter your codename again
session-ended-body = For your safety, your visit ended after a time without use.
session-ended-unsent = For your safety, your visit ended after a time without use. What you sent was NOT stored. Enter your codename, then send it again.
forbidden-title = Not allowed
forbidden-body = This request did not come from this site's own page. Nothing was changed.
followup-off-title = Not offered here
followup-off-body = This service does not offer codenames. You can send new testimony at any time.

## Follow-up: the thread
thread-title = Your testimony and replies
thread-replies = Replies from the reviewers
thread-no-replies = No replies yet. Reviewers read testimony on a computer that is never online, so a reply can take days or weeks.
thread-reply-from = Reply from the reviewers
thread-reply-unreadable = A reply is here, but it could not be read. You can say so when you add more.
thread-reply-delete = Delete this reply
thread-delete-help = Deleting a reply removes it from this server for good. The reviewers keep their own copy.
thread-add = Add more
thread-add-help = Add more testimony or files. They join your earlier testimony, for the same reviewers.
thread-not-added = Nothing was added
thread-done = When you are done
thread-logout-help = Log out so that nobody else using this device can see your replies.
thread-logout = Log out
thread-added = Added. Your new testimony is encrypted and stored with your earlier testimony.
thread-deleted = The reply was deleted.
logged-out-title = You are logged out
logged-out-body = Your replies are no longer shown on this device. To come back, enter your codename again.

## Stored with follow-up testimony for the reviewers (English only)
followup-kind-question = Kind of submission
followup-kind-answer = Follow-up: more from the source of the same thread

## OpenRosa (field apps): the XForm's attachment questions and the apps' answers
openrosa-photo = Photo
openrosa-video = Video
openrosa-audio = Audio recording
openrosa-document = Document or other file
openrosa-stored = Received and stored safely. Only the reviewers can read it.
openrosa-already = Already received: nothing more to send.
openrosa-busy = The service is busy. Nothing was stored; the app will try again.
footer-source = Source code
source-title = Source code of this site
source-licence = This site runs free software: anyone may use, study, change and share it under the GNU Affero General Public License, version 3 or later.
source-version = Version:
source-at = Its source code, with any changes made by the people who run this site, can be downloaded from this address:
source-offsite = That address is on another site, and this page does not link to it: copy it into your browser only if it is safe for you to visit it.
source-ask = The people who run this site must give you its source code, with any changes they made, if you ask them.
